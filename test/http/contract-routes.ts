import { sql, type Kysely } from 'kysely'
import type { DatabaseInput } from '../../src/data/resolve-database.ts'
import { CustomerNotFoundError, CustomerReferenceError } from '../../src/errors.ts'
import type { HandlerResult, IdempotencyPolicy } from '../../src/http/index.ts'
import type { Latch } from '../support/concurrency.ts'

/** A row of `items`, as every data layer's business write returns it. */
export interface Item {
  id: string
  name: string
}

/**
 * The database a contract app runs on: the `db` its middleware takes (any data layer's
 * `database(…)`, or a Kysely instance), and the business write in that layer's own API, through
 * the transaction the middleware hands the handler.
 */
export interface ContractApp {
  db: DatabaseInput
  insertItem(tx: any, name: string): Promise<Item>
}

/** A route of the contract app, independent of the framework and of the data layer. */
export interface ContractRoute {
  method: 'post' | 'get'
  path: string
  policy?: IdempotencyPolicy
  /** Undefined for a plain framework route that the middleware never sees. */
  handler?: (context: {
    tx: any
    body: any
    key: string | undefined
    customer?: { customerId: string } | undefined
    /** The app's business write (one row in `items`) in the handler's transaction. */
    insertItem(name: string): Promise<Item>
  }) => Promise<HandlerResult>
  plain?: () => Promise<unknown>
}

export const counters = { boom: 0, rejected: 0, declined: 0, unavailable: 0, bodies: 0 }
export const latches: { slow?: Latch } = {}

/** The contract app on kysely: the middleware takes the Kysely instance itself. */
export function kyselyApp(db: Kysely<any>): ContractApp {
  return {
    db,
    insertItem: async (tx, name) => (await sql<Item>`insert into items (name) values (${name}) returning id::text, name`.execute(tx)).rows[0]!,
  }
}

export async function createItemsTable(db: Kysely<any>): Promise<void> {
  await sql`create table if not exists items (id bigserial primary key, name text not null)`.execute(db)
}

export const contractRoutes: ContractRoute[] = [
  {
    method: 'post',
    path: '/items',
    policy: { required: true, ignoreFields: ['sentAt'] },
    handler: async ({ insertItem, body }) => {
      const item = await insertItem(body.name)
      return { status: 201, body: { zeta: 1, ...item }, headers: { location: `/items/${item.id}`, 'set-cookie': 'session=secret', 'x-trace': 'abc' } }
    },
  },
  {
    method: 'post',
    path: '/items-conflict',
    policy: { onMismatch: 'conflict' },
    handler: async ({ insertItem, body }) => ({ status: 201, body: await insertItem(body.name) }),
  },
  {
    method: 'post',
    path: '/accounts/:id/items',
    handler: async ({ insertItem, body }) => ({ status: 201, body: await insertItem(body.name) }),
  },
  {
    method: 'post',
    path: '/requests/a',
    policy: { header: 'x-request-id', keyFormat: 'uuid', onMismatch: 'replay', scope: 'client' },
    handler: async ({ insertItem, body }) => ({ status: 201, body: { route: 'a', ...(await insertItem(body.name)) } }),
  },
  {
    method: 'post',
    path: '/requests/b',
    policy: { header: 'x-request-id', keyFormat: 'uuid', onMismatch: 'replay', scope: 'client' },
    handler: async ({ insertItem, body }) => ({ status: 201, body: { route: 'b', ...(await insertItem(body.name)) } }),
  },
  {
    method: 'post',
    path: '/slow',
    handler: async ({ insertItem, body }) => {
      const item = await insertItem(body.name)
      await latches.slow?.hold()
      return { status: 201, body: item }
    },
  },
  {
    method: 'post',
    path: '/waiting',
    policy: { onConcurrent: 'wait' },
    handler: async ({ insertItem, body }) => {
      const item = await insertItem(body.name)
      await latches.slow?.hold()
      return { status: 201, body: item }
    },
  },
  {
    method: 'post',
    path: '/serializable',
    policy: { onConcurrent: 'wait', isolation: 'serializable' },
    handler: async ({ insertItem, body }) => {
      const item = await insertItem(body.name)
      await latches.slow?.hold()
      return { status: 201, body: item }
    },
  },
  {
    method: 'post',
    path: '/boom',
    handler: async ({ insertItem, body }) => {
      counters.boom++
      await insertItem(body.name)
      throw new Error('unexpected failure')
    },
  },
  {
    method: 'post',
    path: '/rejected',
    handler: async ({ insertItem, body }) => {
      counters.rejected++
      await insertItem(body.name)
      return { status: 400, body: { error: 'not_today' } }
    },
  },
  {
    method: 'post',
    path: '/declined',
    handler: async ({ insertItem, body }) => {
      counters.declined++
      await insertItem(body.name)
      return { status: 402, body: { error: 'card_declined' }, final: true }
    },
  },
  {
    // A returned 5xx (also marked final) is sent but never stored, and its writes roll back.
    method: 'post',
    path: '/unavailable',
    handler: async ({ insertItem, body }) => {
      counters.unavailable++
      await insertItem(body.name)
      return { status: 503, body: { error: 'try_later' }, final: body.final === true }
    },
  },
  {
    // A library error the handler raises (a customer lookup) is a problem, with or without a key.
    method: 'post',
    path: '/customer-errors',
    handler: async ({ body }) => {
      throw body.kind === 'not-found' ? new CustomerNotFoundError() : new CustomerReferenceError('Send X-Customer-Id or X-Customer-Idempotent-Identifier, not both.')
    },
  },
  {
    // A result that can never be stored (a NUL character).
    method: 'post',
    path: '/unstorable',
    handler: async ({ insertItem, body }) => ({ status: 201, body: { ...(await insertItem(body.name)), note: 'a\u0000b' } }),
  },
  {
    // Counts its runs and never looks at the body: what the fingerprint sees is the adapter's.
    method: 'post',
    path: '/bodies',
    policy: { ignoreFields: ['meta.sentAt'] },
    handler: async () => ({ status: 201, body: { run: ++counters.bodies } }),
  },
  {
    method: 'post',
    path: '/small-bodies',
    policy: { maxBodyBytes: 1024, maxBodyDepth: 8 },
    handler: async () => ({ status: 201, body: { run: ++counters.bodies } }),
  },
  {
    // A route that lists every credential header in its allow-list, in odd capitalisation.
    method: 'post',
    path: '/credentials',
    policy: {
      storeHeaders: ['Set-Cookie', 'SET-COOKIE2', 'AUTHORIZATION', 'Proxy-Authorization', 'cookie', 'WWW-Authenticate', 'proxy-AUTHENTICATE', 'authentication-info', 'Proxy-Authentication-Info', 'X-Kept'],
    },
    handler: async () => ({
      status: 201,
      body: { run: ++counters.bodies },
      headers: {
        'Set-Cookie': 'session=secret',
        'set-cookie2': 'old=secret',
        Authorization: 'Bearer secret',
        'PROXY-AUTHORIZATION': 'Basic secret',
        Cookie: 'c=secret',
        'www-authenticate': 'Bearer realm="secret"',
        'Proxy-Authenticate': 'Basic realm="secret"',
        'Authentication-Info': 'nextnonce="secret"',
        'proxy-authentication-info': 'nextnonce="secret"',
        'x-kept': 'kept',
      },
    }),
  },
  {
    method: 'get',
    path: '/items',
    plain: async () => ({ items: 'listed' }),
  },
]
