// The library's hot statements, registered by their text so that a pool set up with
// optimizePool can recognise them as kysely hands them to node-postgres.
import { createHash } from 'node:crypto'

/**
 * The transaction-control statement a library statement may share a message with:
 * - `begin`: the claim, always the first statement of its transaction, goes in BEGIN's message;
 * - `commit`: the stored result goes in COMMIT's message when nothing else runs in between and
 *   its call has no savepoint waiting for it (see {@link StoreCall}).
 */
export type TravelsWith = 'begin' | 'commit'

export interface LibraryStatement {
  /** The prepared statement's name on each connection: made from the text, never shared by two. */
  name: string
  travelsWith: TravelsWith | undefined
}

export const STATEMENT_NAME_PREFIX = 'pg_idempotency_'

const statements = new Map<string, LibraryStatement>()

/** Registers `sql` under a name made from `label` and the text, and returns the text. */
export function libraryStatement(label: string, sql: string, travelsWith?: TravelsWith): string {
  if (!statements.has(sql)) {
    const name = `${STATEMENT_NAME_PREFIX}${label}_${createHash('sha256').update(sql).digest('hex').slice(0, 16)}`
    statements.set(sql, { name, travelsWith })
  }
  return sql
}

/** The registered statement with this exact text, if any. */
export function libraryStatementOf(text: string): LibraryStatement | undefined {
  return statements.get(text)
}

/** What a pool needs to know of one call's store, beyond its text. */
export interface StoreCall {
  /** Reported with a store that fails at COMMIT, after withIdempotency has returned. */
  retryAfterSeconds: number
  /** No savepoint waits for it: a failed store fails the whole transaction anyway. */
  mayWaitForCommit: boolean
}

// Keyed by the parameter array the library built: kysely hands node-postgres that very array.
// Should it ever hand over another, the store is simply sent at once.
const storeCalls = new WeakMap<readonly unknown[], StoreCall>()

export function rememberStoreCall(parameters: readonly unknown[], call: StoreCall): void {
  storeCalls.set(parameters, call)
}

export function storeCallOf(parameters: readonly unknown[]): StoreCall | undefined {
  return storeCalls.get(parameters)
}
