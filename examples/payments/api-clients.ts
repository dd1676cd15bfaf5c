// Who is calling: an API key authenticates a client, and the client's id (never the key) is what
// scopes its idempotency keys and owns its accounts. Only a SHA-256 of each key is stored.
import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { PaymentsDatabase } from './schema.ts'

export interface ApiClient {
  clientId: string
  /** Shown once, when the client is created; the service keeps only its hash. */
  apiKey: string
}

const hashOf = (apiKey: string) => createHash('sha256').update(apiKey).digest()

/** Registers an API client and returns its id and its new key. */
export async function createApiClient(db: Kysely<PaymentsDatabase>, name: string): Promise<ApiClient> {
  const apiKey = `pk_${randomBytes(24).toString('base64url')}`
  const { id } = await db.insertInto('api_clients').values({ name, key_sha256: hashOf(apiKey) }).returning('id').executeTakeFirstOrThrow()
  return { clientId: id, apiKey }
}

/** The id of the client an API key belongs to, or undefined for a key nobody was given. */
export async function authenticate(db: Kysely<PaymentsDatabase>, apiKey: string | undefined): Promise<string | undefined> {
  // A key is printable ASCII of bounded length; anything else is not a key (and never reaches SQL).
  if (apiKey === undefined || !/^[\x21-\x7e]{1,200}$/.test(apiKey)) return undefined
  const row = await db.selectFrom('api_clients').select('id').where('key_sha256', '=', hashOf(apiKey)).executeTakeFirst()
  return row?.id
}
