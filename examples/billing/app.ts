// The billing example (scenario 4 of shared/scenarios.md) on Express and Drizzle: Idempotency-Key
// on the listed POST endpoints, the same key within 24 hours replays the first response, the same
// key with another body is a 409. Each business write goes through Drizzle's query builder on the
// `tx` the key is claimed in, so the key, the write and its event commit or roll back together.
import { and, asc, eq } from 'drizzle-orm'
import type { NodePgDatabase } from 'drizzle-orm/node-postgres'
import express, { type Express } from 'express'
// In your service: 'pg-idempotency/drizzle' and 'pg-idempotency/express'.
import { database, emit } from '../../src/data/drizzle/index.ts'
import { expressIdempotency, keepRawBody } from '../../src/http/express.ts'
import { authenticate, clientOf } from './api-clients.ts'
import { isUuid, readNewInvoice, readPaymentAmount } from './input.ts'
import { invalidRequest, problem, PROBLEM_TYPE_BASE, problemHandler, routeNotFound, sendProblem, type Problem } from './problems.ts'
import { invoices, payments, type Invoice } from './schema.ts'

const invoiceNotFound = () => problem(404, 'INVOICE_NOT_FOUND', 'No invoice of this client has that id')
const notAnId = () => invalidRequest('The invoice id is not a UUID.')

export function buildBillingApp(db: NodePgDatabase): Express {
  const app = express()
  app.disable('x-powered-by')
  app.use(authenticate(db))
  // The adapter fingerprints the bytes the client sent: the JSON parser keeps them for it.
  app.use(express.json({ verify: keepRawBody, limit: '64kb' }))
  const idempotent = expressIdempotency({
    db: database(db),
    // The client's id, never its API key, scopes every key: one client never replays another's response.
    client: clientOf,
    ttl: '24h',
    onMismatch: 'conflict',
    // Clients retry 5xx and 429 only: a retry that meets its first request still running waits
    // for it and gets its response, rather than a 409 the client would not retry.
    onConcurrent: 'wait',
    problemTypeBase: PROBLEM_TYPE_BASE,
  })

  // Key recommended, not required: without one, every POST issues a new invoice.
  app.post(
    '/invoices',
    idempotent(async ({ tx, request }) => {
      const input = readNewInvoice(request.body)
      if (typeof input === 'string') return invalidRequest(input)
      const [invoice] = await tx.insert(invoices).values({ clientId: clientOf(request), ...input }).returning()
      return { status: 201, body: invoice, headers: { location: `/invoices/${invoice!.id}` } }
    }),
  )

  // Money movement: the key is required. The payment, the invoice's new balance and the
  // `payment.recorded` event commit with the key; a replay writes and emits nothing.
  app.post(
    '/invoices/:id/payments',
    idempotent({ required: true }, async ({ tx, request }) => {
      const invoiceId = request.params.id
      if (!isUuid(invoiceId)) return notAnId()
      const amount = readPaymentAmount(request.body)
      if (typeof amount === 'string') return invalidRequest(amount)
      const [invoice] = await tx
        .select()
        .from(invoices)
        .where(and(eq(invoices.id, invoiceId), eq(invoices.clientId, clientOf(request))))
        .for('update')
      // Not final: a 4xx stores nothing, so the key still works once the request is right.
      if (!invoice) return invoiceNotFound()
      // Final: the refusal is this key's answer, replayed to every retry.
      if (invoice.status === 'void') return { ...problem(422, 'INVOICE_VOID', 'The invoice is void'), final: true }
      if (amount > invoice.amountDue - invoice.amountPaid) {
        return { ...problem(422, 'PAYMENT_EXCEEDS_AMOUNT_DUE', 'The payment is larger than what is left to pay'), final: true }
      }
      const [payment] = await tx.insert(payments).values({ invoiceId, amount }).returning()
      const amountPaid = invoice.amountPaid + amount
      const [updated] = await tx
        .update(invoices)
        .set({ amountPaid, status: amountPaid === invoice.amountDue ? 'paid' : 'open' })
        .where(eq(invoices.id, invoiceId))
        .returning()
      await emit(tx, 'payment.recorded', { invoiceId, paymentId: payment!.id, amount, currency: invoice.currency, invoiceStatus: updated!.status })
      return { status: 201, body: { ...payment!, invoice: updated! } }
    }),
  )

  // GET, PUT and DELETE are idempotent by nature: no key.
  app.get('/invoices/:id', async (req, res) => {
    if (!isUuid(req.params.id)) return sendProblem(res, notAnId())
    const [invoice] = await db.select().from(invoices).where(and(eq(invoices.id, req.params.id), eq(invoices.clientId, clientOf(req))))
    if (!invoice) return sendProblem(res, invoiceNotFound())
    const paid = await db.select().from(payments).where(eq(payments.invoiceId, invoice.id)).orderBy(asc(payments.createdAt))
    res.json({ ...invoice, payments: paid })
  })

  // Voids an invoice nothing was paid on; voiding it again answers the same.
  app.delete('/invoices/:id', async (req, res) => {
    const id = req.params.id
    if (!isUuid(id)) return sendProblem(res, notAnId())
    const outcome = await db.transaction(async (tx): Promise<{ invoice: Invoice } | { problem: Problem }> => {
      const [invoice] = await tx.select().from(invoices).where(and(eq(invoices.id, id), eq(invoices.clientId, clientOf(req)))).for('update')
      if (!invoice) return { problem: invoiceNotFound() }
      if (invoice.amountPaid > 0) return { problem: problem(422, 'INVOICE_HAS_PAYMENTS', 'An invoice with payments cannot be voided') }
      const [voided] = await tx.update(invoices).set({ status: 'void' }).where(eq(invoices.id, id)).returning()
      return { invoice: voided! }
    })
    if ('problem' in outcome) return sendProblem(res, outcome.problem)
    res.json(outcome.invoice)
  })

  app.use(routeNotFound)
  app.use(problemHandler)
  return app
}
