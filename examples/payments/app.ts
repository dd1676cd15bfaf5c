// The example payments service: every scenario of shared/scenarios.md, on Fastify with
// pg-idempotency. Each route says its idempotency policy in one line.
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { sql, type Kysely, type Transaction } from 'kysely'
import type { PgBoss } from 'pg-boss'
import { idempotencyPlugin } from '../../src/http/fastify.ts'
import type { HttpMismatchHandler } from '../../src/http/index.ts'
import { authenticate } from './api-clients.ts'
import { registerCustomerRoutes } from './customer-routes.ts'
import { installProblemHandlers, problemServerOptions, sendProblem, serviceProblem } from './problems.ts'
import type { PaymentsDatabase } from './schema.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated API client's id (never its key). */
    clientId: string
  }
}

type Tx = Transaction<PaymentsDatabase>
type Movement = { Params: { id: string }; Body: { amount: number } }
type OpenAccount = { Params: { id: string }; Body: { currency?: string } | undefined }

// A plain RFC 4122 form only: ajv's `format: 'uuid'` also takes `urn:uuid:...`, which PostgreSQL refuses.
const UUID = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
const uuidParam = { type: 'object', properties: { id: { type: 'string', pattern: UUID } }, required: ['id'] } as const
const personParam = { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } }, required: ['id'] } as const
const noAccount = () => serviceProblem(404, 'account-not-found', 'No account of this client has that id')
const movementBody = {
  type: 'object',
  properties: { amount: { type: 'integer', minimum: 1, maximum: 1_000_000_000 }, sentAt: { type: 'string' } },
  required: ['amount'],
} as const

export async function buildPaymentsApp(db: Kysely<PaymentsDatabase>, boss: PgBoss): Promise<FastifyInstance> {
  const app = Fastify({ ...problemServerOptions })
  installProblemHandlers(app)
  // Every request authenticates with its API key; the client's id is who the caller is from then on.
  app.decorateRequest('clientId', '')
  app.addHook('onRequest', async (request, reply) => {
    const clientId = await authenticate(db, header(request, 'x-api-key'))
    if (clientId === undefined) return sendProblem(reply, serviceProblem(401, 'unauthenticated', 'Send a valid API key in X-API-Key'))
    request.clientId = clientId
  })
  // Who the caller is scopes every key: one API client can never see another's responses.
  const clientOf = (request: FastifyRequest) => request.clientId
  await app.register(idempotencyPlugin, { db, client: clientOf })
  registerCustomerRoutes(app, db, boss, clientOf)

  // Core-banking style: optional x-request-id (a UUID); a repeat returns the first response, and
  // a request id is unique across the whole platform, not per endpoint. The platform's quirk: a
  // repeat whose body changes the currency updates the existing account, yet returns the
  // original response. The mismatch hook does that in the repeat's transaction.
  const applyCurrencyChange: HttpMismatchHandler<Kysely<PaymentsDatabase>, FastifyRequest> = async ({ tx, stored, request }) => {
    const { params, body } = request as FastifyRequest<OpenAccount>
    const account = stored.body as { id?: string; person_id?: string }
    if (stored.status === 201 && account.person_id === params.id && body?.currency !== undefined) {
      await tx.updateTable('accounts').set({ currency: body.currency }).where('id', '=', account.id!).where('owner_client_id', '=', request.clientId).execute()
    }
    return 'replay' as const
  }
  app.post<OpenAccount>(
    '/persons/:id/accounts',
    { schema: { params: personParam, body: { type: 'object', properties: { currency: { type: 'string', pattern: '^[A-Z]{3}$' } } } } },
    app.idempotent<Kysely<PaymentsDatabase>>(
      { header: 'x-request-id', keyFormat: 'uuid', onMismatch: applyCurrencyChange, scope: 'client' },
      async ({ tx, request }) => {
        const { params, body } = request as FastifyRequest<OpenAccount>
        const account = await tx
          .insertInto('accounts')
          .values({ owner_client_id: request.clientId, person_id: params.id, currency: body?.currency ?? 'EUR' })
          .returning(['id', 'person_id', 'currency', 'balance', 'created_at'])
          .executeTakeFirstOrThrow()
        return { status: 201, body: account, headers: { location: `/accounts/${account.id}` } }
      },
    ),
  )

  // Brokerage style: money movement requires Idempotency-Key; same key and body replays, same key
  // and another body is a 422, keys live 24 hours. `sentAt` is left out of the fingerprint.
  const money = { required: true, ttl: '24h', ignoreFields: ['sentAt'] } as const
  app.post<Movement>('/accounts/:id/deposits', { schema: { params: uuidParam, body: movementBody } }, app.idempotent<Kysely<PaymentsDatabase>>(money, async ({ tx, request }) => {
    const { params, body } = request as FastifyRequest<Movement>
    return move(tx, request.clientId, params.id, 'deposit', body.amount)
  }))
  app.post<Movement>('/accounts/:id/withdrawals', { schema: { params: uuidParam, body: movementBody } }, app.idempotent<Kysely<PaymentsDatabase>>(money, async ({ tx, request }) => {
    const { params, body } = request as FastifyRequest<Movement>
    return move(tx, request.clientId, params.id, 'withdrawal', body.amount)
  }))

  // Billing style: optional key on a listed POST; same key with another body is a 409. Its client
  // does not retry a 409 and reads it as "key reused with another body", so a retry that meets
  // its twin still running waits for it and gets the original response, never a 409.
  app.post<{ Body: { client_user_id: string } }>(
    '/link/token/create',
    { schema: { body: { type: 'object', properties: { client_user_id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['client_user_id'] } } },
    app.idempotent<Kysely<PaymentsDatabase>>({ onMismatch: 'conflict', onConcurrent: 'wait', waitTimeout: '30s' }, async ({ tx, request }) => {
      const { body } = request as FastifyRequest<{ Body: { client_user_id: string } }>
      const token = await tx
        .insertInto('link_tokens')
        .values({ client_user_id: body.client_user_id, expires_at: sql<Date>`now() + interval '4 hours'` })
        .returning(['token', 'expires_at'])
        .executeTakeFirstOrThrow()
      return { status: 200, body: { link_token: token.token, expiration: token.expires_at } }
    }),
  )

  // GETs are idempotent by nature: no key, no transaction. Another client's account is not found.
  const ownAccount = (id: string, clientId: string) =>
    db.selectFrom('accounts').select(['id', 'person_id', 'currency', 'balance', 'created_at']).where('id', '=', id).where('owner_client_id', '=', clientId).executeTakeFirst()
  app.get<{ Params: { id: string } }>('/accounts/:id', { schema: { params: uuidParam } }, async (request, reply) => {
    const account = await ownAccount(request.params.id, request.clientId)
    return account ?? sendProblem(reply, noAccount())
  })
  app.get<{ Params: { id: string } }>('/accounts/:id/ledger', { schema: { params: uuidParam } }, async (request, reply) => {
    if (!(await ownAccount(request.params.id, request.clientId))) return sendProblem(reply, noAccount())
    return db.selectFrom('ledger').selectAll().where('account_id', '=', request.params.id).orderBy('id').execute()
  })
  return app
}

/** A deposit or withdrawal on one of the client's accounts: lock it, write the ledger, move the balance. */
async function move(tx: Tx, clientId: string, accountId: string, kind: 'deposit' | 'withdrawal', amount: number) {
  const account = await tx
    .selectFrom('accounts')
    .select(['id', 'balance'])
    .where('id', '=', accountId)
    .where('owner_client_id', '=', clientId)
    .forUpdate()
    .executeTakeFirst()
  // Not final: a 404 stores nothing, so the same key works once the account exists.
  if (!account) return noAccount()
  // Final: the decline is the answer to this key, replayed to every retry.
  if (kind === 'withdrawal' && BigInt(account.balance) < BigInt(amount)) {
    return { ...serviceProblem(422, 'insufficient-funds', 'The balance does not cover the withdrawal', { balance: account.balance }), final: true }
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
