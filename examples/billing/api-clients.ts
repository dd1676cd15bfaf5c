// Who is calling: an API key authenticates a client, and the client's id (never the key) is what
// scopes its idempotency keys and owns its invoices. Only a SHA-256 of each key is stored.
import { createHash, randomBytes } from 'node:crypto'
import { eq } from 'drizzle-orm'
import type { NodePgDatabase } from 'drizzle-orm/node-postgres'
import type { Request, RequestHandler } from 'express'
import { problem, sendProblem } from './problems.ts'
import { apiClients } from './schema.ts'

export interface ApiClient {
  clientId: string
  /** Shown once, when the client is created; the service keeps only its hash. */
  apiKey: string
}

const hashOf = (apiKey: string) => createHash('sha256').update(apiKey).digest('hex')

/** Registers an API client and returns its id and its new key. */
export async function createApiClient(db: NodePgDatabase, name: string): Promise<ApiClient> {
  const apiKey = `bk_${randomBytes(24).toString('base64url')}`
  const [client] = await db.insert(apiClients).values({ name, keySha256: hashOf(apiKey) }).returning({ id: apiClients.id })
  return { clientId: client!.id, apiKey }
}

const callers = new WeakMap<Request, string>()

/** Middleware: the caller's `X-API-Key` names a client, or the request is a 401 problem. */
export function authenticate(db: NodePgDatabase): RequestHandler {
  return async (req, res, next) => {
    const apiKey = req.get('x-api-key')
    // A key is printable ASCII of bounded length; anything else is not a key (and never reaches SQL).
    const [client] = apiKey !== undefined && /^[\x21-\x7e]{1,200}$/.test(apiKey)
      ? await db.select({ id: apiClients.id }).from(apiClients).where(eq(apiClients.keySha256, hashOf(apiKey)))
      : []
    if (client === undefined) return sendProblem(res, problem(401, 'UNAUTHENTICATED', 'Send a valid API key in X-API-Key'))
    callers.set(req, client.id)
    next()
  }
}

/** The id of the client `authenticate` let in. */
export function clientOf(req: Request): string {
  const clientId = callers.get(req)
  if (clientId === undefined) throw new Error('clientOf: the request did not pass through authenticate()')
  return clientId
}
