// CPU time per request, on each side of the wire. On a shared machine throughput moves with the
// neighbours; the CPU a request costs moves much less, and it is what sets the price when Node
// and PostgreSQL share the cores.
import { readdirSync, readFileSync } from 'node:fs'
import type pg from 'pg'

/** Microseconds of CPU (user + system) used so far. */
export type CpuReader = () => number

/** This process: the clients, kysely, node-postgres and the library. */
export const nodeCpu: CpuReader = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}

// Linux counts process time in clock ticks of 10 ms (USER_HZ = 100 on every current platform).
const MICROSECONDS_PER_TICK = 10_000

/**
 * The server's processes: the postmaster that `monitor`'s backend belongs to and all its
 * children (backends, WAL writer, checkpointer). Undefined when the server is not on this machine
 * (no such process here) or /proc cannot be read.
 */
export async function serverCpuReader(monitor: pg.Client): Promise<CpuReader | undefined> {
  const { rows } = await monitor.query<{ pid: number }>('select pg_backend_pid() as pid')
  const backend = readStat(rows[0]!.pid)
  if (backend === undefined || backend.name !== 'postgres') return undefined
  const postmaster = backend.parent
  return () => {
    let ticks = readStat(postmaster)?.ticks ?? 0
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue
      const stat = readStat(Number(entry))
      if (stat?.parent === postmaster) ticks += stat.ticks
    }
    return ticks * MICROSECONDS_PER_TICK
  }
}

function readStat(pid: number): { name: string; parent: number; ticks: number } | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined // gone, or not Linux
  }
  // "pid (name) state ppid ... utime stime ...": the name may hold spaces, so split after it.
  const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'))
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { name, parent: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) }
}
