// The library's hot statements, registered by their text so that a pool set up with
// optimizePool can recognise them as kysely hands them to node-postgres.
import { createHash } from 'node:crypto'

/**
 * The transaction-control statement a library statement may share a message with:
 * - `begin`: the claim, always the first statement of its transaction, goes in BEGIN's message;
 * - `commit`: the stored result goes in COMMIT's message when nothing else runs in between.
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

// The caller's retryAfterSeconds for a held statement's parameters: a store that fails at COMMIT
// is reported with it, although withIdempotency has returned by then. kysely hands node-postgres
// the very array the library built, so the array itself is the key.
const retryAfterByParameters = new WeakMap<readonly unknown[], number>()

export function rememberRetryAfter(parameters: readonly unknown[], retryAfterSeconds: number): void {
  retryAfterByParameters.set(parameters, retryAfterSeconds)
}

/** The retryAfterSeconds remembered for `parameters`; 1, the option's default, otherwise. */
export function retryAfterFor(parameters: readonly unknown[]): number {
  return retryAfterByParameters.get(parameters) ?? 1
}
