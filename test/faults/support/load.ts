// Steady load for the restart tests: workers sending first calls and retries on a set of keys,
// each recording what it saw, until told to stop.
import type { Kysely } from 'kysely'
import { runRequest, type Seen } from './model-ops.ts'

export interface Load {
  keys: string[]
  successes(): number
  failures(): number
  /** Stops the workers after their current request; resolves with every request's record. */
  stop(): Promise<Seen[]>
}

export function startLoad({ pools, admin, workers, keys, scope }: { pools: Record<string, Kysely<any>>; admin: Kysely<any>; workers: number; keys: string[]; scope: string }): Load {
  const seen: Seen[] = []
  let stopping = false
  let successes = 0
  let failures = 0
  const names = Object.keys(pools)
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let n = 0; !stopping; n++) {
      const key = keys[Math.floor(Math.random() * keys.length)]!
      const pool = names[(w + n) % names.length]!
      const s = await runRequest(pools[pool]!, admin, { op: 'call', key, scope, pool, isolation: 'read committed', savepoint: n % 2 === 0 })
      seen.push(s)
      if (s.committed) successes++
      else {
        failures++
        // A client's back-off while the server is away, not a synchronisation.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  })
  return {
    keys,
    successes: () => successes,
    failures: () => failures,
    stop: async () => {
      stopping = true
      await Promise.all(loops)
      return seen
    },
  }
}
