// The server's own view of the suite's connections: who waits on a lock, which backend a
// transaction runs on, and ending one from outside, as a crash or a network cut would.
import { sql, type Kysely, type Transaction } from 'kysely'

/** The backend process a transaction runs on. */
export async function backendPid(tx: Transaction<any> | Kysely<any>): Promise<number> {
  const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)
  return rows[0]!.pid
}

/**
 * Ends a backend from another connection and returns once it has exited (the timeout form of
 * pg_terminate_backend, PostgreSQL 14+, waits for that): its next statement can only fail.
 */
export async function terminate(admin: Kysely<any>, pid: number): Promise<void> {
  const { rows } = await sql<{ ended: boolean }>`select pg_terminate_backend(${pid}::int, 30000) as ended`.execute(admin)
  if (rows[0]?.ended !== true) throw new Error(`backend ${pid} did not exit`)
}

/** Backends of this database waiting on a lock of the given type (advisory, relation, ...). */
export async function waitingOnLock(admin: Kysely<any>, locktype: string): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`
    select distinct pid from pg_locks
     where not granted and locktype = ${locktype}
       and database = (select oid from pg_database where datname = current_database())
     order by pid`.execute(admin)
  return rows.map((row) => row.pid)
}

/**
 * Polls until at least `count` backends wait on a lock of `locktype` (the server's lock table,
 * not a sleep and a hope), and returns their pids. Fails after 30 s.
 */
export async function untilWaiting(admin: Kysely<any>, locktype: string, count = 1): Promise<number[]> {
  return until(`${count} backend(s) waiting on a ${locktype} lock`, async () => {
    const pids = await waitingOnLock(admin, locktype)
    return pids.length >= count ? pids : undefined
  })
}

/** Polls until the backend has gone (a server-side timeout ended its session). */
export async function untilGone(admin: Kysely<any>, pid: number): Promise<void> {
  await until(`backend ${pid} to exit`, async () => {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`.execute(admin)
    return rows[0]!.n === 0 ? true : undefined
  })
}

/** Polls `probe` (a query of the server's state) until it returns a value; fails after 30 s. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const found = await probe()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
