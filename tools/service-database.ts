// The database an example service runs on: DATABASE_URL's database when set, otherwise a database
// of its own on a fresh embedded server (startLocalPostgres), dropped with the server by `stop()`.
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from './databases.ts'
import { startLocalPostgres } from './local-postgres.ts'

export interface ServiceDatabase {
  url: string
  /** Where PostgreSQL came from, for one line of output. */
  description: string
  /** Drops the service's own database and stops its server; leaves DATABASE_URL's alone. */
  stop(): Promise<void>
}

export async function startServiceDatabase(prefix: string): Promise<ServiceDatabase> {
  const server = await startLocalPostgres()
  const own = !process.env.DATABASE_URL
  const name = uniqueDatabaseName(prefix)
  if (own) await createDatabase(server.url, name)
  return {
    url: own ? withDatabase(server.url, name) : server.url,
    description: server.description,
    async stop() {
      if (own) await dropDatabase(server.url, name)
      await server.stop()
    },
  }
}
