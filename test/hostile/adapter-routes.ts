import { sql, type Kysely, type Transaction } from 'kysely'
import { createCustomer, customerReferenceFromHeaders, IdempotencyError, resolveCustomer } from '../../src/index.ts'
import { DEFAULT_PROBLEM_TYPE_BASE, problemFromError, type HandlerResult, type IdempotencyHttpOptions, type IdempotencyPolicy } from '../../src/http/index.ts'

// The app the hostile corpus attacks on each adapter: the same routes on Express, Fastify and
// Hono (test/hostile/serve.ts builds them). Each policy is written once, here, so a fix that adds
// an option (a body size limit, customer resolution by the HTTP layer) is set in one place.

/**
 * Options shared by every route. Item 8 will add a configurable body size limit with a 413
 * problem; the corpus sends 5 MB bodies and expects that 413 under the default limit. Set the
 * option here if the default ever needs help (e.g. `bodyLimit: '1mb'`).
 */
export const sharedOptions: Omit<IdempotencyHttpOptions<any, any>, 'db' | 'client'> = {}

/**
 * Routes acting on behalf of a customer (`X-Customer-Id` / `X-Customer-Idempotent-Identifier`).
 * Today the handler resolves the customer itself; item 3 makes the key belong to the customer.
 * If that fix resolves the customer in the HTTP layer, switch it on here.
 */
export const onBehalfOfCustomer: IdempotencyPolicy = { customer: true }

/** Headers no replay may carry (item 12 and item 25's never-stored filter), listed on purpose. */
export const CREDENTIAL_HEADERS = ['set-cookie', 'Set-Cookie2', 'AUTHORIZATION', 'Proxy-Authorization', 'cookie', 'www-authenticate', 'proxy-authenticate', 'authentication-info', 'Proxy-Authentication-Info']

/** What a handler sees of a request, whatever the framework. */
export interface PlainRequest {
  body: unknown
  header(name: string): string | undefined
  query(name: string): string | undefined
  client: string
}

export interface HostileRoute {
  method: 'post'
  path: string
  policy?: IdempotencyPolicy
  /** Runs in the key's transaction (an idempotent route). */
  handler?: (tx: Transaction<any>, request: PlainRequest) => Promise<HandlerResult>
  /** A plain route the middleware never sees. */
  plain?: (db: Kysely<any>, request: PlainRequest) => Promise<HandlerResult>
}

export async function createHostileTables(db: Kysely<any>): Promise<void> {
  await sql`create table if not exists hostile_items (id bigserial primary key, route text not null, name text)`.execute(db)
}

const nameOf = (body: unknown) => (typeof body === 'object' && body !== null && typeof (body as { name?: unknown }).name === 'string' ? (body as { name: string }).name : null)

/** Writes a row and answers with the body's name: the victim's responses carry its marker so. */
const echo = (route: string) => async (tx: Transaction<any>, request: PlainRequest): Promise<HandlerResult> => {
  const name = nameOf(request.body)
  // The database cannot hold NUL; a keyed request with one is refused before this runs.
  const { rows } = await sql<{ id: string }>`insert into hostile_items (route, name) values (${route}, ${name?.replaceAll('\u0000', '') ?? null}) returning id::text`.execute(tx)
  return { status: 201, body: { route, id: rows[0]!.id, name } }
}

async function answerLibraryErrors(work: () => Promise<HandlerResult>): Promise<HandlerResult> {
  try {
    return await work()
  } catch (error) {
    if (!(error instanceof IdempotencyError)) throw error
    const problem = problemFromError(DEFAULT_PROBLEM_TYPE_BASE, error, 422)
    return { status: problem.status, headers: problem.headers, body: problem.body }
  }
}

/** Resolves the customer the request names, writes a row for it, and answers with its name. */
const forCustomer = (route: string) => async (tx: Transaction<any>, request: PlainRequest): Promise<HandlerResult> => {
  const customer = await resolveCustomer(tx, { clientId: request.client, ...customerReferenceFromHeaders(request.header) })
  const name = nameOf(request.body)
  const { rows } = await sql<{ id: string }>`insert into hostile_items (route, name) values (${route}, ${customer.customerId}) returning id::text`.execute(tx)
  return { status: 201, body: { route, id: rows[0]!.id, customer_id: customer.customerId, name } }
}

export const hostileRoutes: HostileRoute[] = [
  { method: 'post', path: '/h/items', policy: { required: true }, handler: echo('items') },
  { method: 'post', path: '/h/items-conflict', policy: { required: true, onMismatch: 'conflict' }, handler: echo('items-conflict') },
  { method: 'post', path: '/h/optional', handler: echo('optional') },
  { method: 'post', path: '/h/uuid-keys', policy: { required: true, keyFormat: 'uuid' }, handler: echo('uuid-keys') },
  { method: 'post', path: '/h/uuid-v4-keys', policy: { required: true, keyFormat: 'uuid-v4' }, handler: echo('uuid-v4-keys') },
  { method: 'post', path: '/h/requests', policy: { header: 'x-request-id', keyFormat: 'uuid', onMismatch: 'replay', scope: 'client' }, handler: echo('requests') },
  { method: 'post', path: '/h/accounts/:id/items', policy: { required: true }, handler: echo('account-items') },
  { method: 'post', path: '/h/customer-items', policy: { ...onBehalfOfCustomer, required: true }, handler: forCustomer('customer-items') },
  { method: 'post', path: '/h/customer-items-optional', policy: { ...onBehalfOfCustomer }, handler: forCustomer('customer-items-optional') },
  {
    method: 'post',
    path: '/h/credential-headers',
    policy: { required: true, storeHeaders: ['content-type', ...CREDENTIAL_HEADERS] },
    handler: async (tx, request) => {
      const result = await echo('credential-headers')(tx, request)
      return { ...result, headers: Object.fromEntries(CREDENTIAL_HEADERS.map((name) => [name, `secret-${name.toLowerCase()}`])) }
    },
  },
  {
    // Answers with a query parameter as given: `?note=%00` makes a result no database can store.
    method: 'post',
    path: '/h/echo-query',
    policy: { required: true },
    handler: async (tx, request) => ({ ...(await echo('echo-query')(tx, request)), body: { note: request.query('note') ?? null } }),
  },
  {
    method: 'post',
    path: '/h/customers',
    plain: (db, request) =>
      answerLibraryErrors(async () => {
        const identifier = (request.body as { identifier?: unknown } | undefined)?.identifier
        const { customer, created } = await db.transaction().execute((tx) => createCustomer(tx, { clientId: request.client, idempotentIdentifier: identifier as string }))
        return { status: created ? 201 : 200, body: { customer_id: customer.customerId } }
      }),
  },
]
