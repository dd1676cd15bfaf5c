// The business side of a request under fault: each run of fn writes one row naming its key and
// a run id of its own, and returns a value holding that run id. Counting rows per key tells how
// often fn's writes committed; the run id ties a stored value to the run whose writes it belongs to.
import { randomUUID } from 'node:crypto'
import { sql, type Kysely, type Transaction } from 'kysely'

export interface EffectsDatabase {
  fault_effects: { id: import('kysely').Generated<number>; key: string; run: string }
}

/** What fn returns: its run id and text that JSON and PostgreSQL must keep byte for byte. */
export interface EffectValue {
  key: string
  run: string
  text: string
  amount: number
}

// Strings a lossy round trip would change: escapes, non-BMP characters, line separators, a
// decimal that is not exact in binary.
const TEXTS = ['plain', 'quote " and \\ backslash', 'emoji 😀 and 日本', 'line\nbreak\ttab', 'sep \u2028\u2029', 'é composed é', '']
const AMOUNTS = [0, 1, -7, 0.1, 1e21, 123456789.125, 2 ** 53 - 1]

/**
 * The business table. No unique constraint on `key`: at-most-once must come from the library,
 * not from the schema of the test.
 */
export async function createEffects(db: Kysely<any>): Promise<void> {
  await sql`create table if not exists fault_effects (id bigserial primary key, key text not null, run text not null)`.execute(db)
  await sql`create index if not exists fault_effects_key on fault_effects (key)`.execute(db)
}

/** fn's write: one row for this run. */
export async function writeEffect(tx: Transaction<any>, key: string): Promise<EffectValue> {
  const run = randomUUID()
  await sql`insert into fault_effects (key, run) values (${key}, ${run})`.execute(tx)
  const pick = Number.parseInt(run.slice(0, 8), 16)
  return { key, run, text: TEXTS[pick % TEXTS.length]!, amount: AMOUNTS[pick % AMOUNTS.length]! }
}
