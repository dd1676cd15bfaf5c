// PgBouncer (Debian's `pgbouncer` package) in transaction pooling mode, configured in a
// temporary directory on a free port, in front of a server the suite uses.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from '../../../tools/local-postgres.ts'
import { until } from './backends.ts'

const BINARIES = ['/usr/sbin/pgbouncer', 'pgbouncer']

export interface PgBouncer {
  /** `serverUrl`'s database, through PgBouncer (which logs in with the server's credentials). */
  url: string
  /** `PgBouncer 1.18.0`, say. */
  version: string
  close(): Promise<void>
}

/** The pgbouncer binary and its version, or undefined when it is not installed. */
export async function findPgBouncer(): Promise<{ binary: string; version: string } | undefined> {
  for (const binary of BINARIES) {
    try {
      const { stdout } = await promisify(execFile)(binary, ['--version'])
      return { binary, version: stdout.split('\n')[0]!.trim() }
    } catch {}
  }
  return undefined
}

export async function startPgBouncer(serverUrl: string, { poolSize = 60 }: { poolSize?: number } = {}): Promise<PgBouncer> {
  const found = await findPgBouncer()
  if (!found) throw new Error('pgbouncer is not installed')
  const server = new URL(serverUrl)
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), `pg-idempotency-pgbouncer-${randomBytes(3).toString('hex')}-`))
  const password = decodeURIComponent(server.password)
  // auth_type = any: clients are not checked, every server login uses the user (and password)
  // named here; `*` sends each database name through as it is.
  const ini = [
    '[databases]',
    `* = host=${server.hostname} port=${server.port || 5432} user=${decodeURIComponent(server.username) || 'postgres'}${password ? ` password=${password}` : ''}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = any',
    'pool_mode = transaction',
    'max_client_conn = 500',
    `default_pool_size = ${poolSize}`,
    'ignore_startup_parameters = extra_float_digits,options',
    'server_check_delay = 0',
    '',
  ].join('\n')
  await writeFile(join(dir, 'pgbouncer.ini'), ini, { mode: 0o644 })
  // PgBouncer refuses to run as root; -u drops to the postgres user after reading the file.
  const args = [...(userInfo().uid === 0 ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')]
  const child: ChildProcess = spawn(found.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = new URL(serverUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  try {
    await until('pgbouncer to accept connections', async () => {
      if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${output}`)
      const client = new pg.Client({ connectionString: url.toString() })
      client.on('error', () => {})
      try {
        await client.connect()
        await client.query('select 1')
        return true
      } catch {
        return undefined
      } finally {
        await client.end().catch(() => {})
      }
    })
  } catch (error) {
    child.kill('SIGTERM')
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  return {
    url: url.toString(),
    version: found.version,
    close: async () => {
      child.kill('SIGTERM')
      await exited
      await rm(dir, { recursive: true, force: true })
    },
  }
}
