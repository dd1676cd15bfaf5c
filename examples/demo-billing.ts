// `npm run demo:billing`: the Express + Drizzle billing service (scenario 4 of
// shared/scenarios.md) on a real PostgreSQL, driven over HTTP; each operation's key is made once
// and the retrying client reuses it on every retry.
import { randomUUID } from 'node:crypto'
import { count, sql } from 'drizzle-orm'
import { idempotentFetch } from '../src/client/index.ts'
import { exitOnSetupError } from '../tools/postgres-process.ts'
import { invoices, payments } from './billing/schema.ts'
import { startBillingService, type BillingService } from './billing/service.ts'
import { losesFirstResponse, printTable } from './demo-support.ts'

type Row = { step: string; request: string; status: string; replayed: string; rows: string }

const rows: Row[] = []

async function tally(service: BillingService): Promise<string> {
  const [invoiceRows] = await service.db.select({ n: count() }).from(invoices)
  const [paymentRows] = await service.db.select({ n: count() }).from(payments)
  const events = await service.db.execute<{ n: number }>(sql`select count(*)::int as n from idempotency.outbox_events`)
  return `invoices: ${invoiceRows!.n}, payments: ${paymentRows!.n}, events: ${events.rows[0]!.n}`
}

/** Sends one request (with retries when it has a key) and records a line of the table. */
async function step(service: BillingService, label: string, method: string, path: string, body?: unknown, options: { key?: string; fetch?: typeof fetch } = {}) {
  const init = {
    method,
    headers: { 'x-api-key': service.apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }
  const response = options.key
    ? await idempotentFetch(service.url + path, init, { key: options.key, ...(options.fetch ? { fetch: options.fetch } : {}) })
    : await fetch(service.url + path, init)
  const payload = (await response.json()) as { id?: string; code?: string; status?: string; invoice?: { status: string } }
  const outcome = payload.code ?? (typeof payload.status === 'string' ? payload.status : payload.invoice ? `invoice ${payload.invoice.status}` : '')
  rows.push({
    step: label,
    request: `${method} ${path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, ':id')}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`,
    status: `${response.status} ${outcome}`.trim(),
    replayed: response.headers.get('idempotent-replayed') === 'true' ? 'yes' : 'no',
    rows: await tally(service),
  })
  return payload
}

const service = await startBillingService().catch(exitOnSetupError)
console.log(`billing service (Express + Drizzle) on ${service.url}, PostgreSQL: ${service.postgres}\n`)
try {
  const invoice = { customer: 'cus_42', currency: 'EUR', amountDue: 1000 }
  const invoiceKey = randomUUID()
  const { id } = await step(service, 'issue an invoice', 'POST', '/invoices', invoice, { key: invoiceKey })
  await step(service, 'same key, same body', 'POST', '/invoices', invoice, { key: invoiceKey })
  await step(service, 'same key, other body', 'POST', '/invoices', { ...invoice, amountDue: 2000 }, { key: invoiceKey })
  await step(service, 'no key: a new invoice', 'POST', '/invoices', invoice)

  const pay = `/invoices/${id}/payments`
  await step(service, 'pay without a key', 'POST', pay, { amount: 400 })
  const paymentKey = randomUUID()
  await step(service, 'pay; response lost, retried', 'POST', pay, { amount: 400 }, { key: paymentKey, fetch: losesFirstResponse() })
  await step(service, 'same key, other amount', 'POST', pay, { amount: 500 }, { key: paymentKey })
  await step(service, 'pay more than is due', 'POST', pay, { amount: 700 }, { key: randomUUID() })

  // Twenty clients send the same payment at once: the first pays, the others wait for it and replay it.
  const burstKey = randomUUID()
  const before = await tally(service)
  const burst = await Promise.all(
    Array.from({ length: 20 }, () =>
      idempotentFetch(service.url + pay, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': service.apiKey }, body: JSON.stringify({ amount: 600 }) }, { key: burstKey }),
    ),
  )
  rows.push({
    step: '20 concurrent duplicates',
    request: 'POST /invoices/:id/payments {"amount":600}',
    status: [...new Set(burst.map((r) => r.status))].join(','),
    replayed: `${burst.filter((r) => r.headers.get('idempotent-replayed') === 'true').length} of 20`,
    rows: `${before} -> ${await tally(service)}`,
  })

  await step(service, 'read it: no key', 'GET', `/invoices/${id}`)
  const { id: unpaid } = await step(service, 'another invoice', 'POST', '/invoices', { ...invoice, amountDue: 50 }, { key: randomUUID() })
  await step(service, 'void it: no key', 'DELETE', `/invoices/${unpaid}`)
  await step(service, 'void it again', 'DELETE', `/invoices/${unpaid}`)
  printTable(rows, ['step', 'request', 'status', 'replayed', 'rows'])
} finally {
  await service.stop()
}
