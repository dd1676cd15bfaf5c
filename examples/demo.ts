// `npm run demo`: the payments service on a real PostgreSQL, driven over HTTP by the retrying
// client through every scenario of shared/scenarios.md that needs no customer deletion.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { idempotentFetch } from '../src/client/index.ts'
import { exitOnSetupError } from '../tools/postgres-process.ts'
import { losesFirstResponse, printTable } from './demo-support.ts'
import { startPaymentsService, type PaymentsService } from './payments/service.ts'

type Table = 'accounts' | 'ledger' | 'link_tokens' | 'financial_accounts'

type Row = {
  step: string
  request: string
  status: number | string
  replayed: string
  rows: string
}

const rows: Row[] = []

async function count(service: PaymentsService, table: Table): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(service.db)
  return rows[0]?.n ?? 0
}

/** Sends one request (with retries) and records a line of the table. */
async function step(
  service: PaymentsService,
  label: string,
  path: string,
  body: unknown,
  table: Table,
  options: { key?: string; header?: string; headers?: Record<string, string>; fetch?: typeof fetch } = {},
) {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-api-key': service.apiKey, ...options.headers }
  const init = { method: 'POST', headers, body: JSON.stringify(body) }
  const response = options.key
    ? await idempotentFetch(service.url + path, init, { key: options.key, header: options.header ?? 'Idempotency-Key', ...(options.fetch ? { fetch: options.fetch } : {}) })
    : await fetch(service.url + path, init)
  const payload = (await response.json()) as { error?: string; type?: string; id?: string }
  const outcome = payload.type ? payload.type.replace(/.*\//, '') : (payload.error ?? '')
  rows.push({
    step: label,
    request: `POST ${path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, ':id')} ${JSON.stringify(body)}`,
    status: `${response.status} ${outcome}`.trim(),
    replayed: response.headers.get('idempotent-replayed') === 'true' ? 'yes' : 'no',
    rows: `${table}: ${await count(service, table)}`,
  })
  return payload
}

/** One plain request of the customer story, recorded like the others. */
async function call(service: PaymentsService, label: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(service.url + path, {
    method,
    headers: { 'x-api-key': service.apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const payload = (await response.json()) as Record<string, unknown>
  const customers = (await sql<{ n: number }>`select count(*)::int as n from idempotency.customers`.execute(service.db)).rows[0]!.n
  const customerId = customerIdOf(payload)
  const outcome = typeof payload.code === 'string' ? payload.code : customerId !== undefined ? `customer ${customerId.slice(0, 8)}` : ''
  rows.push({
    step: label,
    request: `${method} ${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}${Object.keys(headers).length ? ` [${Object.keys(headers).join(', ')}]` : ''}`,
    status: `${response.status} ${outcome}`.trim(),
    replayed: '',
    rows: `customers: ${customers}, financial_accounts: ${await count(service, 'financial_accounts')}`,
  })
  return payload
}

/** `POST /customers` and `GET /customers` name the customer `data.customer_id`, as scenario 1's platform does. */
function customerIdOf(payload: Record<string, unknown>): string | undefined {
  const id = (payload.data as { customer_id?: unknown } | undefined)?.customer_id
  return typeof id === 'string' ? id : undefined
}

async function customerStory(service: PaymentsService) {
  const create = { client_metadata: { idempotent_identifier: 'user-123' } }
  const onBehalf = { 'x-customer-idempotent-identifier': 'user-123' }
  const firstId = String(customerIdOf(await call(service, 'create customer', 'POST', '/customers', create)))
  await call(service, 'create it again', 'POST', '/customers', create)
  await call(service, 'find it by identifier', 'GET', '/customers?idempotent_identifier=user-123')
  await call(service, 'open an account for it', 'POST', '/financial/accounts', { name: 'savings' }, onBehalf)
  await call(service, 'list its accounts by id', 'GET', '/financial/accounts', undefined, { 'x-customer-id': firstId })
  await call(service, 'name it twice', 'GET', '/financial/accounts', undefined, { ...onBehalf, 'x-customer-id': firstId })
  await call(service, 'delete it', 'DELETE', '/customers/idempotent-identifier/user-123')
  await call(service, 'create it while it is deleted', 'POST', '/customers', create)
  // The worker picks the job up within its polling interval and deletes in batches.
  let deletion: Record<string, unknown>
  do {
    await new Promise((resolve) => setTimeout(resolve, 100))
    deletion = (await (await fetch(`${service.url}/customers/${firstId}/deletion`, { headers: { 'x-api-key': service.apiKey } })).json()) as Record<string, unknown>
  } while (deletion.state !== 'done')
  await call(service, 'deletion done', 'GET', `/customers/${firstId}/deletion`)
  rows[rows.length - 1]!.status = `200 ${JSON.stringify(deletion.deletedRows)}`
  await call(service, 'create it once more: a new customer', 'POST', '/customers', create)
}

const service = await startPaymentsService().catch(exitOnSetupError)
console.log(`payments service on ${service.url}, PostgreSQL: ${service.postgres}\n`)
try {
  // Scenario 1: customers by the client's own identifier, deleted in the background.
  await customerStory(service)

  // Scenario 2: optional x-request-id; a repeat replays even with another body.
  const requestId = randomUUID()
  const opened = await step(service, 'request id', '/persons/p-1/accounts', { currency: 'EUR' }, 'accounts', { key: requestId, header: 'x-request-id' })
  await step(service, 'same id, other currency', '/persons/p-1/accounts', { currency: 'USD' }, 'accounts', { key: requestId, header: 'x-request-id' })
  // The platform's quirk: the original response, yet the account now holds the new currency.
  const { currency } = await service.db.selectFrom('accounts').select('currency').where('id', '=', String(opened.id)).executeTakeFirstOrThrow()
  rows[rows.length - 1]!.rows += ` (its currency now ${currency})`
  await step(service, 'no request id', '/persons/p-1/accounts', { currency: 'EUR' }, 'accounts')
  await step(service, 'no request id again', '/persons/p-1/accounts', { currency: 'EUR' }, 'accounts')
  const deposits = `/accounts/${opened.id}/deposits`

  // Scenario 3: money movement requires a key; a key is bound to its first body.
  const key = randomUUID()
  await step(service, 'deposit without key', deposits, { amount: 100 }, 'ledger')
  await step(service, 'deposit', deposits, { amount: 100 }, 'ledger', { key })
  await step(service, 'same key, same body', deposits, { amount: 100 }, 'ledger', { key })
  await step(service, 'same key, other body', deposits, { amount: 150 }, 'ledger', { key })
  await step(service, 'other key, same body', deposits, { amount: 100 }, 'ledger', { key: randomUUID() })
  const withdrawal = randomUUID()
  const withdrawals = deposits.replace('deposits', 'withdrawals')
  await step(service, 'withdraw too much', withdrawals, { amount: 1_000_000 }, 'ledger', { key: withdrawal })
  await step(service, 'retry the decline', withdrawals, { amount: 1_000_000 }, 'ledger', { key: withdrawal })

  // Scenario 4: the client retries with its one key; the lost response is replayed.
  const linkKey = randomUUID()
  await step(service, 'response lost, retried', '/link/token/create', { client_user_id: 'u-1' }, 'link_tokens', { key: linkKey, fetch: losesFirstResponse() })
  await step(service, 'same key, other body', '/link/token/create', { client_user_id: 'u-2' }, 'link_tokens', { key: linkKey })

  // Fifty clients send the same deposit at once; the in-progress 409s are retried.
  const burstKey = randomUUID()
  const before = await count(service, 'ledger')
  const burst = await Promise.all(
    Array.from({ length: 50 }, () =>
      idempotentFetch(service.url + deposits, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': service.apiKey }, body: JSON.stringify({ amount: 25 }) }, { key: burstKey }),
    ),
  )
  const replayed = burst.filter((r) => r.headers.get('idempotent-replayed') === 'true').length
  rows.push({
    step: '50 concurrent duplicates',
    request: `POST /accounts/:id/deposits {"amount":25}`,
    status: [...new Set(burst.map((r) => r.status))].join(','),
    replayed: `${replayed} of 50`,
    rows: `ledger: ${before} -> ${await count(service, 'ledger')}`,
  })
  printTable(rows, ['step', 'request', 'status', 'replayed', 'rows'])
} finally {
  await service.stop()
}
