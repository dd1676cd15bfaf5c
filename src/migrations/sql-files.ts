import { readdir, readFile } from 'node:fs/promises'
import { IdempotencyUsageError } from '../errors.ts'
import { quoteIdentifier, quoteLiteral, quoteSchema } from '../store/schema-name.ts'

/** The folder of the plain SQL files a DBA runs with psql; the code runs the very same files. */
export const SQL_DIRECTORY = new URL('../../sql/', import.meta.url)

/** One numbered file of `sql/`. */
export interface SqlMigration {
  version: number
  /** The file name without `.sql`, such as `0001_idempotency_keys`. */
  name: string
  text: string
}

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/

/** The numbered migration files, in order. */
export async function loadMigrations(): Promise<SqlMigration[]> {
  const files = (await readdir(SQL_DIRECTORY)).filter((file) => MIGRATION_FILE.test(file)).sort()
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(0, -'.sql'.length),
      text: await readFile(new URL(file, SQL_DIRECTORY), 'utf8'),
    })),
  )
}

/** A file of `sql/` that is not a migration, such as `grants.sql`. */
export async function loadSqlFile(file: string): Promise<string> {
  return readFile(new URL(file, SQL_DIRECTORY), 'utf8')
}

/**
 * Makes a psql script runnable by the driver inside a transaction the caller already holds:
 * drops psql's backslash commands and the script's own `BEGIN;` and `COMMIT;` lines, and fills
 * in the psql variables `:"name"` (an identifier) and `:'name'` (a literal).
 */
export function renderSql(text: string, variables: Record<string, string>): string {
  const body = text
    .split('\n')
    .filter((line) => !line.startsWith('\\') && line !== 'BEGIN;' && line !== 'COMMIT;')
    .join('\n')
  return body.replace(/:(["'])([a-z_]+)\1/g, (_match, quote: string, name: string) => {
    const value = variables[name]
    if (value === undefined) throw new IdempotencyUsageError(`The SQL file needs the variable ${name}.`)
    if (quote === "'") return quoteLiteral(value)
    return name === 'schema' ? quoteSchema(value) : quoteIdentifier(value)
  })
}
