// npm run bench (last part): the floor under the first-call goals. How close can any design that
// claims a key before the work and stores the result after it come to the bare transaction on
// this machine? Here node-postgres sends the library's own two statements, captured from one real
// withIdempotency call, with no kysely and none of the library's JavaScript in the way, around
// each of the core benchmark's two business transactions (the single insert; lock the account,
// insert a ledger row, update the balance):
//
// - bare: BEGIN, the business statements, COMMIT (as raw pg);
// - two empty round trips: a prepared SELECT 1 where the claim and the store would go, so only
//   the trips cost, not the statements;
// - claim and store, unbatched: the library's two statements, each in a round trip of its own
//   (a pool without optimizedDialect, or with { batching: false });
// - claim and store, batched: the claim in BEGIN's message and the store in COMMIT's, as
//   withIdempotency sends them on an optimizedDialect: as many round trips as bare;
// - bare, batched: BEGIN in the first business statement's message. Sending BEGIN with the next
//   statement saves a round trip in any transaction, so against it the library's batching
//   compares like with like.
//
// The core benchmark's rounds (measure.ts): variants take turns, the order rotated each round;
// ratios are the median over rounds of the same round's ratio. BENCH_SECONDS sets the seconds per
// round (default 2).
import { createHash, randomInt, randomUUID } from 'node:crypto'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { migrate, withIdempotency } from '../src/index.ts'
import { createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { sendBatch, type BatchClient, type BatchStatement } from '../src/data/pg-wire/batch-query.ts'
import { serverCpuReader } from './cpu.ts'
import { combine, pairedRatio, runRound, type CellResult, type Meters, type RoundResult } from './measure.ts'
import { ACCOUNTS, createTables } from './scenarios.ts'
import { fixed, table } from './stats.ts'

const CLIENTS = 8
const ROUNDS = 4
const STORED_KEYS = 100_000
const seconds = Number(process.env.BENCH_SECONDS ?? 2)
if (!(seconds > 0)) throw new Error(`BENCH_SECONDS must be a positive number of seconds; got ${process.env.BENCH_SECONDS}`)

/** A business transaction's statements for one request, as raw pg sends them. */
interface Business {
  name: string
  /** The core benchmark's goal for a first call, as a share of bare. */
  goal: number
  statements(): Statement[]
}

const businesses: Business[] = [
  {
    name: 'single insert',
    goal: 0.6,
    statements: () => [
      { name: 'bench_floor_insert', text: 'insert into ledger (account_id, amount) values ($1, $2) returning id', values: [randomInt(1, ACCOUNTS + 1), randomInt(1, 100)] },
    ],
  },
  {
    name: 'three statements',
    goal: 0.75,
    statements: () => {
      const account = randomInt(1, ACCOUNTS + 1)
      const amount = randomInt(1, 100)
      return [
        { name: 'bench_floor_lock', text: 'select balance from accounts where id = $1 for update', values: [account] },
        { name: 'bench_floor_insert', text: 'insert into ledger (account_id, amount) values ($1, $2) returning id', values: [account, amount] },
        { name: 'bench_floor_update', text: 'update accounts set balance = balance + $2 where id = $1 returning balance', values: [account, amount] },
      ]
    },
  },
]

// Ctrl-C stops the clients and still drops the database: the server may be shared.
const interrupt = new AbortController()
process.once('SIGINT', () => interrupt.abort(new Error('interrupted')))

const server = await startLocalPostgres({ log: (line) => console.error(line), durable: true })
const database = uniqueDatabaseName('pgidem_bench_floor')
await createDatabase(server.url, database)
try {
  const url = withDatabase(server.url, database)
  const library = await setUp(url)
  await measure(url, library)
} finally {
  await dropDatabase(server.url, database)
  await server.stop()
}

/** Migrates, fills the key table, and returns the claim and store statements of one real first call. */
async function setUp(url: string): Promise<{ claim: Statement; store: Statement }> {
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  const sent: Statement[] = []
  // On a plain pool the library's statements reach node-postgres as text and values.
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as { query: typeof query }).query = (...args) => {
      const [text, values] = args as [unknown, unknown[]]
      if (typeof text === 'string' && text.includes('claim_idempotency_key(')) sent.push({ name: 'bench_floor_claim', text, values })
      if (typeof text === 'string' && text.includes('insert into "idempotency".idempotency_keys')) sent.push({ name: 'bench_floor_store', text, values })
      return query(...args)
    }
  })
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
  try {
    await migrate(db)
    await createTables(db)
    // A key table the size a busy service keeps for a day, so lookups and inserts meet a deep index.
    await sql`insert into idempotency.idempotency_keys (scope, key, fingerprint, status, response, completed_at, expires_at)
              select 'tenant_0001:POST /ledger', gen_random_uuid()::text, sha256(i::text::bytea), 'completed', '{"id":"1"}',
                     now(), now() + interval '1 day'
              from generate_series(1, ${STORED_KEYS}) as i`.execute(db)
    await sql`analyze`.execute(db)
    sent.length = 0 // the migrations' texts name the claim function too
    await db.transaction().execute((tx) =>
      withIdempotency(tx, { scope: 'tenant_0001:POST /ledger', key: randomUUID(), request: { account: 1, amount: 1 } }, async (tx) => {
        const row = await sql<{ id: string }>`insert into ledger (account_id, amount) values (1, 1) returning id`.execute(tx)
        return { id: row.rows[0]!.id }
      }),
    )
  } finally {
    await db.destroy()
  }
  const [claim, store] = sent
  if (sent.length !== 2 || claim!.name !== 'bench_floor_claim' || store!.name !== 'bench_floor_store') {
    throw new Error(`expected the claim and the store from one first call; captured ${sent.map((s) => s.name).join(', ')}`)
  }
  return { claim: claim!, store: store! }
}

/** A named statement, as node-postgres takes it: each connection parses it once. */
type Statement = Required<Pick<BatchStatement, 'name' | 'text' | 'values'>>
type Message = string | Statement | Statement[]

async function send(client: pg.Client, messages: Message[]): Promise<void> {
  for (const message of messages) {
    if (Array.isArray(message)) await sendBatch(client as unknown as BatchClient, message).results
    else await client.query(message as pg.QueryConfig)
  }
}

async function measure(url: string, library: { claim: Statement; store: Statement }) {
  // A fresh key (and fingerprint) per request, in the positions the library uses.
  const withKey = (statement: Statement, key: string, fingerprint: Buffer): Statement => {
    const values = [...statement.values]
    values[1] = key
    values[2] = fingerprint
    return { ...statement, values }
  }
  const fresh = () => {
    const key = randomUUID()
    const fingerprint = createHash('sha256').update(key).digest()
    return { claim: withKey(library.claim, key, fingerprint), store: withKey(library.store, key, fingerprint) }
  }
  const selectOne: Statement = { name: 'bench_floor_select_one', text: 'select 1', values: [] }
  const begin: Statement = { name: 'bench_floor_begin', text: 'begin', values: [] }
  const commit: Statement = { name: 'bench_floor_commit', text: 'commit', values: [] }

  // Each request as the messages it sends: a statement alone, BEGIN and COMMIT as kysely sends
  // them (simple queries), or a batch of statements behind one Sync. A failed statement in a
  // batch makes the server skip the rest, so a failed store never reaches its COMMIT.
  const plansOf = ({ statements }: Business): Record<string, () => Message[]> => ({
    bare: () => ['begin', ...statements(), 'commit'],
    'two empty round trips': () => ['begin', selectOne, ...statements(), selectOne, 'commit'],
    'claim and store, unbatched': () => {
      const { claim, store } = fresh()
      return ['begin', claim, ...statements(), store, 'commit']
    },
    'claim and store, batched': () => {
      const { claim, store } = fresh()
      return [[begin, claim], ...statements(), [store, commit]]
    },
    'bare, batched': () => {
      const [first, ...rest] = statements()
      return [[begin, first!], ...rest, 'commit']
    },
  })

  const monitor = new pg.Client({ connectionString: url })
  await monitor.connect()
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
  )
  try {
    // The core benchmark's rounds. Loop `i` of runRound only passes slots congruent to i modulo
    // CLIENTS, so each loop keeps to one connection. Round trips are not counted here.
    const meters: Meters = { counter: { queries: 0 }, wal: undefined, serverCpu: await serverCpuReader(monitor) }
    for (const business of businesses) {
      const plans = plansOf(business)
      const names = Object.keys(plans)
      const rounds = new Map(names.map((name) => [name, [] as RoundResult[]]))
      for (let round = 0; round < ROUNDS; round++) {
        for (const name of names.map((_, i) => names[(i + round) % names.length]!)) {
          const plan = plans[name]!
          const request = (slot: number) => send(clients[slot % CLIENTS]!, plan())
          rounds.get(name)!.push(await runRound(request, CLIENTS, round === 0 ? 1000 : 250, seconds * 1000, meters, interrupt.signal))
        }
      }
      const bare = rounds.get('bare')!
      report(business, new Map([...rounds].map(([name, results]) => [name, { ...combine(results), vsBare: pairedRatio(results, bare) }])), rounds)
    }
  } finally {
    await Promise.all([...clients, monitor].map((client) => client.end()))
  }
}

function report(business: Business, cells: Map<string, CellResult & { vsBare: number }>, rounds: Map<string, RoundResult[]>) {
  const ratio = (name: string, to: string) => pairedRatio(rounds.get(name)!, rounds.get(to)!)
  console.log(`\nThe floor: node-postgres alone, ${business.name}, ${CLIENTS} clients, ${ROUNDS} rounds of ${seconds} s`)
  console.log(
    table(
      ['variant', 'req/s', 'vs bare', 'node µs/req', 'pg µs/req'],
      [...cells].map(([name, cell]) => [name, fixed(cell.rate, 0), fixed(cell.vsBare, 2), fixed(cell.nodeCpuPerRequestUs, 0), fixed(cell.serverCpuPerRequestUs, 0)]),
    ),
  )
  console.log(
    `Claim and store: ${fixed(ratio('claim and store, unbatched', 'bare'), 2)} of bare in round trips of their own, ` +
      `${fixed(ratio('claim and store, batched', 'bare'), 2)} batched as withIdempotency sends them on an optimizedDialect, ` +
      `${fixed(ratio('claim and store, batched', 'bare, batched'), 2)} of bare batched alike. The first-call goal is ${fixed(business.goal, 2)}.`,
  )
}
