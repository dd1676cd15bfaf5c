// The fault harness's first move, on every real data layer but postgres.js (which crashes the
// process, see postgres-js-lost-connection.test.ts): the app's connections are killed again and
// again while requests run through database(x).transaction + withIdempotency. Afterwards the
// process is alive, every key ran at most once and is stored exactly when its business row
// committed, no request saw a non-retryable library error (Knex's failed BEGIN gave
// IDEMPOTENCY_USAGE), and every raw error that did not come from the handler's own write is a
// lost connection (what the HTTP adapters answer with a retryable 503). Drizzle (node-postgres)
// is left out: its transaction leaks the pool client when BEGIN fails and the load then hangs
// (drizzle-begin-lost-leaks-client.test.ts).
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdempotencyError } from '../../src/index.ts'
import { isConnectionLost } from '../../src/store/connection-lost.ts'
import type { LayerUnderTest, OpenLayer } from '../data-layers/layer-under-test.ts'
import pg from 'pg'
import { pgLayer } from '../data-layers/pg-layer.ts'
import { knexReal, prismaReal } from '../data-layers/real-layers.ts'
import { useTestDatabase } from '../support/test-database.ts'

// node-postgres's advice for every pool: hear an idle client's error (a killed idle connection).
class ListeningPool extends pg.Pool {
  constructor(config: pg.PoolConfig) {
    super(config)
    this.on('error', () => {})
  }
}
const pgListening = pgLayer('node-postgres', ListeningPool)

const database = useTestDatabase({ maxConnections: 4 })
const APP = 'attack_app'
const WORKERS = 6
const KEYS = 24

beforeAll(async () => {
  await sql`create table if not exists contract_ledger (scope text not null, amount int not null)`.execute(database.db)
})

const FROM_HANDLER = Symbol('from the handler')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function describeError(error: unknown): string {
  if (error instanceof IdempotencyError) return `${error.code}${error.retryable ? ' (retryable)' : ' (NOT retryable)'}`
  const e = error as { code?: unknown; message?: unknown; constructor?: { name?: string } }
  const where = (error as Record<symbol, boolean>)?.[FROM_HANDLER] ? 'handler' : 'library'
  return `raw (${where})${isConnectionLost(error) ? ' [lost]' : ''} ${e?.constructor?.name}: ${String(e?.code ?? '')} ${String(e?.message ?? error).split('\n')[0]!.slice(0, 120)}`
}

function killedUnderLoad(layer: LayerUnderTest): void {
  let open: OpenLayer<any>
  beforeAll(async () => {
    const url = new URL(database.url)
    url.searchParams.set('application_name', APP)
    open = await layer.open(url.toString(), WORKERS)
  })
  afterAll(async () => {
    await open?.close().catch(() => {})
  })

  it("keeps at most once and all or nothing, raises no non-retryable error, and every raw error outside the handler is a lost connection", async () => {
    const scope = `kill:${randomUUID()}`
    const keys = Array.from({ length: KEYS }, () => randomUUID())
    const errors = new Map<string, number>()
    let stop = false
    let successes = 0
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const key = keys[(w * 7 + i) % KEYS]!
        try {
          await open.database.transaction((tx) =>
            open.withIdempotency(tx, { scope, key }, async (tx) => {
              try {
                await open.insertLedgerRow(tx, key, 1)
              } catch (error) {
                ;(error as Record<symbol, boolean>)[FROM_HANDLER] = true
                throw error
              }
              await sleep(Math.floor(Math.random() * 15))
              return 'done'
            }),
          )
          successes++
        } catch (error) {
          const text = describeError(error)
          errors.set(text, (errors.get(text) ?? 0) + 1)
          await sleep(5)
        }
      }
    }
    const running = Array.from({ length: WORKERS }, (_, w) => worker(w))
    for (let round = 0; round < 15; round++) {
      await sleep(40 + Math.floor(Math.random() * 40))
      await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${APP} and pid <> pg_backend_pid()`.execute(database.db)
    }
    await sleep(200)
    stop = true
    await Promise.all(running)

    const { rows } = await sql<{ key: string; rows: string; stored: string }>`
      select k.key, (select count(*) from contract_ledger l where l.scope = k.key)::text as rows,
             (select count(*) from idempotency.idempotency_keys i where i.scope = ${scope} and i.key = k.key and i.status = 'completed')::text as stored
        from unnest(${keys}::text[]) as k(key)`.execute(database.db)
    const broken = rows.filter((r) => !(r.rows === r.stored && Number(r.rows) <= 1))
    console.log(`${layer.name}: ${successes} successes`, Object.fromEntries(errors))
    expect(broken).toEqual([])
    expect(successes).toBeGreaterThan(0)
    expect([...errors.keys()].filter((text) => text.includes('NOT retryable'))).toEqual([])
    expect([...errors.keys()].filter((text) => text.startsWith('raw (library)') && !text.includes('[lost]'))).toEqual([])
  })
}

for (const layer of [pgListening, knexReal]) describe(`${layer.name}: connections killed under load`, () => killedUnderLoad(layer))

// SKIPPED: passes its assertions, but about one run in three an 'error' event of a node-postgres
// client inside @prisma/adapter-pg's pool (57P01, the killed backend) goes unheard: an uncaught
// exception that ends an app's process. adapter-pg listens on a client only between
// startTransaction and commit()/rollback(), which remove the listener and release the client;
// which window lets the event through is not pinned down. Run it with ATTACK_PRISMA=1.
describe.skipIf(!process.env.ATTACK_PRISMA)(`${prismaReal.name}: connections killed under load`, () => killedUnderLoad(prismaReal))
