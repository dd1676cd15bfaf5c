// The relay alone, with a publisher that only counts, so the figures are the relay's own cost.
// (a) The other keys' delivery: 20,000 events over 1,000 keys, first alone (the baseline), then
// with one more key's 20,000 events waiting behind its head event in backoff.
// (b) One key's backlog: 100 events of one key drained by start() with default settings, against
// 100 events of 100 keys (the baseline). Events are written straight into the table: no emitter
// is in flight, so the relay's view is settled.
import { sql, type Kysely } from 'kysely'
import { createOutboxRelay, type Publisher } from '../src/outbox/index.ts'
import { fixed, median, table } from './stats.ts'

const OTHER_EVENTS = Number(process.env.BENCH_OUTBOX_OTHER ?? 20_000)
const BLOCKED_EVENTS = Number(process.env.BENCH_OUTBOX_BLOCKED ?? 20_000)
const OTHER_KEYS = 1000
const BACKLOG = 100
const REPEATS = Number(process.env.BENCH_OUTBOX_REPEATS ?? 3)

export async function relayAlone(db: Kysely<any>) {
  const results = { baseline: [] as number[], blocked: [] as number[], spread: [] as number[], backlog: [] as number[] }
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    results.baseline.push(await otherKeys(db, false))
    results.blocked.push(await otherKeys(db, true))
    results.spread.push(await drainWithStart(db, BACKLOG))
    results.backlog.push(await drainWithStart(db, 1))
  }
  const rate = (values: number[]) => median(values)
  console.log(`\noutbox relay alone (counting publisher; median of ${REPEATS})`)
  console.log(
    table(
      ['case', 'events/s', 'ratio'],
      [
        [`${OTHER_EVENTS.toLocaleString('en')} events of ${OTHER_KEYS} keys (baseline, batchSize 500)`, fixed(rate(results.baseline), 0), '1.00'],
        [`the same, one key's ${BLOCKED_EVENTS.toLocaleString('en')} events blocked behind its head`, fixed(rate(results.blocked), 0), fixed(rate(results.blocked) / rate(results.baseline), 2)],
        [`${BACKLOG} events of ${BACKLOG} keys, start() with defaults (baseline)`, fixed(rate(results.spread), 0), '1.00'],
        [`${BACKLOG} events of one key, start() with defaults`, fixed(rate(results.backlog), 0), fixed(rate(results.backlog) / rate(results.spread), 2)],
      ],
    ),
  )
}

const counting = () => {
  const publisher = { count: 0, publish: async () => void publisher.count++ }
  return publisher satisfies Publisher
}

async function clear(db: Kysely<any>) {
  await sql`truncate idempotency.outbox_events`.execute(db)
}

/** The other keys' events per second, with or without the blocked key's backlog. */
async function otherKeys(db: Kysely<any>, blocked: boolean): Promise<number> {
  await clear(db)
  if (blocked) {
    // The blocked key's events come first (the oldest), its head in backoff for an hour.
    await sql`
      insert into idempotency.outbox_events (event_id, topic, ordering_key, payload)
      select gen_random_uuid(), 'bench', 'blocked', '{}' from generate_series(1, ${BLOCKED_EVENTS}::int)`.execute(db)
    await sql`
      update idempotency.outbox_events set attempts = 1, next_attempt_at = now() + interval '1 hour'
       where id = (select min(id) from idempotency.outbox_events)`.execute(db)
  }
  await sql`
    insert into idempotency.outbox_events (event_id, topic, ordering_key, payload)
    select gen_random_uuid(), 'bench', 'k' || (i % ${OTHER_KEYS}::int), '{}' from generate_series(1, ${OTHER_EVENTS}::int) as i`.execute(db)
  await sql`analyze idempotency.outbox_events`.execute(db)
  const publisher = counting()
  const relay = createOutboxRelay({ db, batchSize: 500, publishers: { '*': publisher } })
  const started = performance.now()
  while (publisher.count < OTHER_EVENTS) {
    const round = await relay.runOnce()
    if (round.delivered === 0) throw new Error(`the relay stopped after ${publisher.count} events`)
  }
  const rate = OTHER_EVENTS / ((performance.now() - started) / 1000)
  if (publisher.count !== OTHER_EVENTS) throw new Error(`delivered ${publisher.count} events, expected ${OTHER_EVENTS}`)
  return rate
}

/** Events per second for `BACKLOG` events over `keys` keys, drained by start() with default settings. */
async function drainWithStart(db: Kysely<any>, keys: number): Promise<number> {
  await clear(db)
  await sql`
    insert into idempotency.outbox_events (event_id, topic, ordering_key, payload)
    select gen_random_uuid(), 'bench', 'c' || (i % ${keys}::int), '{}' from generate_series(1, ${BACKLOG}::int) as i`.execute(db)
  const publisher = counting()
  const relay = createOutboxRelay({ db, publishers: { '*': publisher } })
  const started = performance.now()
  relay.start()
  const deadline = Date.now() + 120_000
  while (publisher.count < BACKLOG && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  const rate = publisher.count / ((performance.now() - started) / 1000)
  await relay.stop()
  return rate
}
