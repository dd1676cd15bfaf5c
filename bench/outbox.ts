// npm run bench (third part): the outbox. (1) What emit() adds to a request: the same
// withIdempotency transaction with and without one emit, at 8 clients, interleaved rounds.
// (2) Throughput from commit to consumer: 100,000 events emitted by concurrent transactions,
// relayed to a Redis stream, and applied by consumers through withInbox (one transaction each).
// (3) The relay alone (a publisher that only counts): the other keys' delivery with and without
// one key's backlog blocked behind its head in backoff, and one key's backlog drained with default
// settings against the same number of events spread over as many keys. BENCH_OUTBOX=relay runs
// only (3).
import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { createClient } from 'redis'
import { createCustomer, emit, migrate, withIdempotency, withInbox } from '../src/index.ts'
import { createOutboxRelay, redisStreamsPublisher } from '../src/outbox/index.ts'
import { connect, createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../tools/databases.ts'
import { startLocalPostgres } from '../tools/local-postgres.ts'
import { fixed, median, table } from './stats.ts'
import { relayAlone } from './outbox-relay.ts'

const CLIENTS = 8
const ROUNDS = 3
const seconds = Number(process.env.BENCH_SECONDS ?? 2)
const EVENTS = Number(process.env.BENCH_OUTBOX_EVENTS ?? 100_000)
const EVENTS_PER_TRANSACTION = 10
const ORDERING_KEYS = 1000
const CONSUMERS = 4

const postgres = await startLocalPostgres({ log: (line) => console.error(line), durable: true })
const name = uniqueDatabaseName('pgidem_bench_outbox')
await createDatabase(postgres.url, name)
const db = connect(withDatabase(postgres.url, name), 24)
const redis = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })
try {
  await redis.connect()
  await migrate(db)
  await sql`create table bench_ledger (id bigserial primary key, amount int not null)`.execute(db)
  await sql`create table bench_applied (event_id uuid primary key, amount int not null)`.execute(db)
  if (process.env.BENCH_OUTBOX !== 'relay') {
    await emitCost(db)
    await throughput(db)
  }
  await relayAlone(db)
} finally {
  await redis.quit().catch(() => {})
  await db.destroy()
  await dropDatabase(postgres.url, name)
  await postgres.stop()
}

async function emitCost(db: Kysely<any>) {
  // Events name existing customers (a foreign key): a pool of them, one picked at random per request.
  const customers: string[] = []
  for (let i = 0; i < 200; i++) {
    customers.push(await db.transaction().execute(async (tx) => (await createCustomer(tx, { clientId: 'bench', idempotentIdentifier: `c${i}` })).customer.customerId))
  }
  const variants = {
    'withIdempotency': async () => {
      await db.transaction().execute((tx) =>
        withIdempotency(tx, randomUUID(), async (tx) => sql`insert into bench_ledger (amount) values (1)`.execute(tx).then(() => 1)),
      )
    },
    'withIdempotency + emit': async () => {
      await db.transaction().execute((tx) =>
        withIdempotency(tx, { key: randomUUID(), customerId: customers[Math.floor(Math.random() * customers.length)]! }, async (tx) => {
          await sql`insert into bench_ledger (amount) values (1)`.execute(tx)
          await emit(tx, 'deposit.accepted', { amount: 1 })
          return 1
        }),
      )
    },
  }
  const names = Object.keys(variants) as Array<keyof typeof variants>
  const results = new Map(names.map((n) => [n, [] as number[]]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of round % 2 === 0 ? names : names.toReversed()) {
      let done = 0
      const until = Date.now() + seconds * 1000
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (Date.now() < until) {
            await variants[variant]()
            done++
          }
        }),
      )
      results.get(variant)!.push(done / seconds)
    }
  }
  const base = median(results.get('withIdempotency')!)
  console.log(`\noutbox: what emit() adds to a first call (single insert, ${CLIENTS} clients, ${ROUNDS} rounds of ${seconds} s)`)
  console.log(table(['variant', 'req/s', 'ratio'], names.map((n) => [n, fixed(median(results.get(n)!), 0), fixed(median(results.get(n)!) / base, 2)])))
  await sql`delete from idempotency.outbox_events`.execute(db)
}

async function throughput(db: Kysely<any>) {
  const stream = `pgidem-bench-${randomUUID()}`
  await redis.xGroupCreate(stream, 'consumers', '0', { MKSTREAM: true })
  const relay = createOutboxRelay({ db, batchSize: 500, pollInterval: 20, publishers: { '*': redisStreamsPublisher(redis, { stream: () => stream }) } })
  const started = Date.now()
  let applied = 0
  let duplicates = 0
  relay.start()
  const consumers = Array.from({ length: CONSUMERS }, async (_, c) => {
    const client = redis.duplicate()
    await client.connect()
    try {
      while (applied < EVENTS) {
        const reply = (await client.xReadGroup('consumers', `c${c}`, { key: stream, id: '>' }, { COUNT: 100, BLOCK: 200 })) as Array<{ messages: Array<{ id: string; message: Record<string, string> }> }> | null
        for (const { id, message } of reply?.[0]?.messages ?? []) {
          const { duplicate } = await db.transaction().execute((tx) =>
            withInbox(tx, { source: stream, messageId: message.event_id! }, async (tx) => {
              await sql`insert into bench_applied (event_id, amount) values (${message.event_id}::uuid, ${(JSON.parse(message.payload!) as { amount: number }).amount})`.execute(tx)
              return null
            }),
          )
          if (duplicate) duplicates++
          else applied++
          await client.xAck(stream, 'consumers', id)
        }
      }
    } finally {
      await client.quit()
    }
  })
  let produced = 0
  const producers = Array.from({ length: CLIENTS }, async () => {
    while (produced < EVENTS) {
      produced += EVENTS_PER_TRANSACTION
      await db.transaction().execute(async (tx) => {
        for (let i = 0; i < EVENTS_PER_TRANSACTION; i++) {
          await emit(tx, 'deposit.accepted', { amount: 1 }, { orderingKey: `k${Math.floor(Math.random() * ORDERING_KEYS)}` })
        }
      })
    }
  })
  await Promise.all(producers)
  const producedAt = Date.now()
  await Promise.all(consumers)
  const finished = Date.now()
  await relay.stop()
  const total = (finished - started) / 1000
  console.log(`\noutbox: ${EVENTS.toLocaleString('en')} events, commit to consumer (Redis stream, ${CONSUMERS} consumers applying through withInbox)`)
  console.log(
    table(
      ['measure', 'value'],
      [
        ['emitted (in transactions of 10, 8 producers)', `${fixed((producedAt - started) / 1000, 1)} s, ${fixed(EVENTS / ((producedAt - started) / 1000), 0)} events/s`],
        ['all applied by the consumers', `${fixed(total, 1)} s, ${fixed(EVENTS / total, 0)} events/s end to end`],
        ['redeliveries skipped by the inbox', String(duplicates)],
      ],
    ),
  )
  await redis.del(stream)
}
