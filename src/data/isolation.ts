import { IdempotencyUsageError } from '../errors.ts'
import type { IsolationLevel } from './database.ts'

const LEVELS: ReadonlySet<string> = new Set<IsolationLevel>(['read uncommitted', 'read committed', 'repeatable read', 'serializable'])

/** `isolation` checked against PostgreSQL's levels, safe to put in a `BEGIN ISOLATION LEVEL …`. */
export function isolationLevel(isolation: IsolationLevel): IsolationLevel {
  if (!LEVELS.has(isolation)) throw new IdempotencyUsageError(`Unknown isolation level: ${String(isolation)}.`)
  return isolation
}
