// A PostgreSQL server of the fault suite's own, which it may stop and start at will: the embedded
// PostgreSQL binaries in a temporary directory on a free port (tools/postgres-process.ts, which
// also works as root from a directory the postgres user cannot enter). Never the machine's server.
import { freePort } from '../../../tools/local-postgres.ts'
import { launchPostgres } from '../../../tools/postgres-process.ts'

export interface FaultServer {
  /** An admin connection string (database `postgres`). */
  url: string
  /**
   * Stops the server as `pg_ctl stop -m <mode>` would: `fast` ends every session and shuts down
   * cleanly, `immediate` ends every process at once and recovers on the next start. Resolves
   * once the postmaster has exited.
   */
  stop(mode: 'fast' | 'immediate'): Promise<void>
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>
  /** Stops it and deletes its data directory. */
  destroy(): Promise<void>
}

export async function startFaultServer(): Promise<FaultServer> {
  // A commit the client was told about must survive an immediate shutdown: synchronous_commit
  // stays on. fsync may be off, as the operating system itself does not crash here.
  const server = await launchPostgres({ port: await freePort(), flags: ['-c', 'max_connections=200', '-c', 'fsync=off'] })
  return { url: server.url, stop: (mode) => server.stop(mode), start: () => server.start(), destroy: () => server.remove() }
}
