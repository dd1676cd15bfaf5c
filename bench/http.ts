// npm run bench (second part): the deposit endpoint over HTTP, bare versus behind the
// middleware, first calls (a fresh key per request) and replays, at 8 and 32 connections.
// autocannon drives a server in a child process; the variants take turns over ROUNDS rounds,
// the order rotated each round; req/s is the median round, and vs bare the median of the rounds'
// ratios. Before the measured rounds at each connection count, every variant runs one unmeasured
// second, so no measured round pays for opening its pool's connections or warming its code.
// The bare endpoint runs on a plain pool, the middleware on an optimizedDialect.
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import autocannon from 'autocannon'
import { migrate } from '../src/index.ts'
import { connect, createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { createHttpTables, HTTP_ACCOUNTS } from './http-tables.ts'
import { fixed, median, table } from './stats.ts'

const CONNECTIONS = [8, 32]
const ROUNDS = 5
const WARMUP_SECONDS = 1
const seconds = Number(process.env.BENCH_SECONDS ?? 2)
const REPLAY_KEYS = 512

type Variant = 'bare' | 'first' | 'replay'
const variants: Variant[] = ['bare', 'first', 'replay']

const postgres = await startLocalPostgres({ log: (line) => console.error(line), durable: true })
const name = uniqueDatabaseName('pgidem_bench_http')
await createDatabase(postgres.url, name)
const url = withDatabase(postgres.url, name)
try {
  const db = connect(url, 2)
  await migrate(db)
  await createHttpTables(db)
  await db.destroy()
  await run(url)
} finally {
  await dropDatabase(postgres.url, name)
  await postgres.stop()
}

async function run(databaseUrl: string) {
  const child = spawn(process.execPath, [new URL('./http-server.ts', import.meta.url).pathname, databaseUrl], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
  const base = `http://127.0.0.1:${chunk.toString().trim()}`
  try {
    const replayKeys = await storeReplayKeys(base)
    console.log(`\nHTTP: POST /accounts/:id/deposits on Fastify (lock account, insert ledger row, update balance); ${ROUNDS} rounds of ${seconds} s per cell`)
    const summary: string[] = []
    for (const connections of CONNECTIONS) {
      const rounds = new Map<Variant, Array<{ rps: number; p50: number; p99: number }>>(variants.map((v) => [v, []]))
      for (const variant of variants) await load(base, variant, connections, replayKeys, WARMUP_SECONDS)
      for (let round = 0; round < ROUNDS; round++) {
        const order = variants.map((_, i) => variants[(i + round) % variants.length]!)
        for (const variant of order) rounds.get(variant)!.push(await load(base, variant, connections, replayKeys))
      }
      // A variant's req/s over bare's in the same round, the median over rounds: a slow spell of
      // the machine that lasts a round moves both sides.
      const bareRounds = rounds.get('bare')!
      const ratio = (v: Variant) => median(rounds.get(v)!.map((r, i) => r.rps / bareRounds[i]!.rps))
      const rows = variants.map((variant) => {
        const results = rounds.get(variant)!
        return [variant, fixed(median(results.map((r) => r.rps)), 0), fixed(median(results.map((r) => r.p50)), 2), fixed(median(results.map((r) => r.p99)), 2), fixed(ratio(variant), 2)]
      })
      console.log(`\n${connections} connections`)
      console.log(table(['variant', 'req/s', 'p50 ms', 'p99 ms', 'vs bare'], rows))
      if (connections === 32) {
        summary.push(`first ${fixed(ratio('first'), 2)} ${ratio('first') >= 0.7 ? 'PASS' : 'MISS'} (>= 0.70)`)
        summary.push(`replay ${fixed(ratio('replay'), 2)} ${ratio('replay') >= 1.2 ? 'PASS' : 'MISS'} (>= 1.20)`)
      }
    }
    console.log(`\nGoals at 32 connections: ${summary.join('; ')}`)
  } finally {
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
}

/** Keys stored once through the middleware, for the replay rounds. */
async function storeReplayKeys(base: string): Promise<string[]> {
  const keys = Array.from({ length: REPLAY_KEYS }, () => randomUUID())
  for (const [i, key] of keys.entries()) {
    const response = await fetch(`${base}/idem/accounts/${(i % HTTP_ACCOUNTS) + 1}/deposits`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ amount: 1 }),
    })
    if (response.status !== 201) throw new Error(`storing replay keys: ${response.status} ${await response.text()}`)
  }
  return keys
}

async function load(base: string, variant: Variant, connections: number, replayKeys: string[], duration = seconds) {
  let n = 0
  const result = await autocannon({
    url: base,
    connections,
    duration,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const i = n++
          const account = variant === 'replay' ? (i % REPLAY_KEYS) % HTTP_ACCOUNTS : i % HTTP_ACCOUNTS
          const headers: Record<string, string> = { 'content-type': 'application/json' }
          if (variant === 'first') headers['idempotency-key'] = randomUUID()
          if (variant === 'replay') headers['idempotency-key'] = replayKeys[i % REPLAY_KEYS]!
          return {
            ...request,
            path: `/${variant === 'bare' ? 'bare' : 'idem'}/accounts/${account + 1}/deposits`,
            headers,
            body: JSON.stringify({ amount: 1 }),
          }
        },
      },
    ],
  })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${variant}: ${result.non2xx} non-2xx and ${result.errors} errors`)
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 }
}
