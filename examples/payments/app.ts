// The example payments service: every scenario of shared/scenarios.md, on Fastify with
// pg-idempotency. Each route says its idempotency policy in one line.
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { sql, type Kysely, type Transaction } from 'kysely'
import type { PgBoss } from 'pg-boss'
import { idempotencyPlugin } from '../../src/http/fastify.ts'
import { registerCustomerRoutes } from './customer-routes.ts'
import type { PaymentsDatabase } from './schema.ts'

type Tx = Transaction<PaymentsDatabase>
type Movement = { Params: { id: string }; Body: { amount: number } }

const uuidParam = { type: 'object', properties: { id: { type: 'string', format: 'uuid' } }, required: ['id'] } as const
const movementBody = {
  type: 'object',
  properties: { amount: { type: 'integer', minimum: 1, maximum: 1_000_000_000 }, sentAt: { type: 'string' } },
  required: ['amount'],
} as const

export async function buildPaymentsApp(db: Kysely<PaymentsDatabase>, boss: PgBoss): Promise<FastifyInstance> {
  const app = Fastify()
  // Who the caller is scopes every key: one API client can never see another's responses.
  const clientOf = (request: FastifyRequest) => header(request, 'x-api-key') ?? 'public'
  await app.register(idempotencyPlugin, { db, client: clientOf })
  registerCustomerRoutes(app, db, boss, clientOf)

  // Core-banking style: optional x-request-id (a UUID); a repeat replays the first response even
  // with another body, and a request id is unique across the whole platform, not per endpoint.
  app.post<{ Params: { id: string }; Body: { currency?: string } }>(
    '/persons/:id/accounts',
    { schema: { body: { type: 'object', properties: { currency: { type: 'string', pattern: '^[A-Z]{3}$' } } } } },
    app.idempotent<PaymentsDatabase>(
      { header: 'x-request-id', keyFormat: 'uuid', onMismatch: 'replay', scope: 'client' },
      async ({ tx, request }) => {
        const { params, body } = request as FastifyRequest<{ Params: { id: string }; Body: { currency?: string } }>
        const account = await tx
          .insertInto('accounts')
          .values({ person_id: params.id, currency: body?.currency ?? 'EUR' })
          .returningAll()
          .executeTakeFirstOrThrow()
        return { status: 201, body: account, headers: { location: `/accounts/${account.id}` } }
      },
    ),
  )

  // Brokerage style: money movement requires Idempotency-Key; same key and body replays, same key
  // and another body is a 422, keys live 24 hours. `sentAt` is left out of the fingerprint.
  const money = { required: true, ttl: '24h', ignoreFields: ['sentAt'] } as const
  app.post<Movement>('/accounts/:id/deposits', { schema: { params: uuidParam, body: movementBody } }, app.idempotent<PaymentsDatabase>(money, async ({ tx, request }) => {
    const { params, body } = request as FastifyRequest<Movement>
    return move(tx, params.id, 'deposit', body.amount)
  }))
  app.post<Movement>('/accounts/:id/withdrawals', { schema: { params: uuidParam, body: movementBody } }, app.idempotent<PaymentsDatabase>(money, async ({ tx, request }) => {
    const { params, body } = request as FastifyRequest<Movement>
    return move(tx, params.id, 'withdrawal', body.amount)
  }))

  // Billing style: optional key on a listed POST; same key with another body is a 409.
  app.post<{ Body: { client_user_id: string } }>(
    '/link/token/create',
    { schema: { body: { type: 'object', properties: { client_user_id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['client_user_id'] } } },
    app.idempotent<PaymentsDatabase>({ onMismatch: 'conflict' }, async ({ tx, request }) => {
      const { body } = request as FastifyRequest<{ Body: { client_user_id: string } }>
      const token = await tx
        .insertInto('link_tokens')
        .values({ client_user_id: body.client_user_id, expires_at: sql<Date>`now() + interval '4 hours'` })
        .returning(['token', 'expires_at'])
        .executeTakeFirstOrThrow()
      return { status: 200, body: { link_token: token.token, expiration: token.expires_at } }
    }),
  )

  // GETs are idempotent by nature: no key, no transaction.
  app.get<{ Params: { id: string } }>('/accounts/:id', { schema: { params: uuidParam } }, async (request, reply) => {
    const account = await db.selectFrom('accounts').selectAll().where('id', '=', request.params.id).executeTakeFirst()
    return account ?? reply.code(404).send({ error: 'account_not_found' })
  })
  app.get<{ Params: { id: string } }>('/accounts/:id/ledger', { schema: { params: uuidParam } }, async (request) =>
    db.selectFrom('ledger').selectAll().where('account_id', '=', request.params.id).orderBy('id').execute(),
  )
  return app
}

/** A deposit or withdrawal: lock the account, write the ledger, move the balance. */
async function move(tx: Tx, accountId: string, kind: 'deposit' | 'withdrawal', amount: number) {
  const account = await tx.selectFrom('accounts').select(['id', 'balance']).where('id', '=', accountId).forUpdate().executeTakeFirst()
  // Not final: a 404 stores nothing, so the same key works once the account exists.
  if (!account) return { status: 404, body: { error: 'account_not_found' } }
  // Final: the decline is the answer to this key, replayed to every retry.
  if (kind === 'withdrawal' && BigInt(account.balance) < BigInt(amount)) {
    return { status: 422, body: { error: 'insufficient_funds', balance: account.balance }, final: true }
  }
  const entry = await tx.insertInto('ledger').values({ account_id: accountId, kind, amount: String(amount) }).returningAll().executeTakeFirstOrThrow()
  const updated = await tx
    .updateTable('accounts')
    .set((eb) => ({ balance: eb('balance', kind === 'deposit' ? '+' : '-', String(amount)) }))
    .where('id', '=', accountId)
    .returning('balance')
    .executeTakeFirstOrThrow()
  return { status: 201, body: { ...entry, balance: updated.balance } }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}
