// The checks after every faulted request: at most one run per key, fn's writes and the key row
// committed together or not at all, and the stored value is the committed run's, byte for byte.
import { sql, type Kysely } from 'kysely'
import { withIdempotency } from '../../../src/index.ts'

export interface KeyState {
  key: string
  /** The run ids of fn's committed writes. */
  runs: string[]
  status: string | null
  /** The stored value as the server holds it (json keeps the text as written). */
  response: string | null
}

export async function keyStates(admin: Kysely<any>, keys: readonly string[]): Promise<KeyState[]> {
  const effects = await sql<{ key: string; run: string }>`select key, run from fault_effects where key = any(${keys}::text[]) order by id`.execute(admin)
  const stored = await sql<{ key: string; status: string; response: string | null }>`
    select key, status, response::text as response from idempotency.idempotency_keys where key = any(${keys}::text[])`.execute(admin)
  return keys.map((key) => {
    const row = stored.rows.find((r) => r.key === key)
    return { key, runs: effects.rows.filter((e) => e.key === key).map((e) => e.run), status: row?.status ?? null, response: row?.response ?? null }
  })
}

/** What is wrong with one key's committed state; empty when nothing is. */
export function stateViolations(state: KeyState): string[] {
  const { key, runs, status, response } = state
  const found: string[] = []
  if (runs.length > 1) found.push(`${key}: fn's writes committed ${runs.length} times`)
  if (status === 'completed') {
    if (runs.length === 0) found.push(`${key}: a completed key without its business row`)
    else if (response === null || (JSON.parse(response) as { run?: unknown }).run !== runs[0]) {
      found.push(`${key}: the stored value is not the committed run's (${response})`)
    }
  } else if (runs.length > 0) {
    found.push(`${key}: business rows without a completed key (key status ${status})`)
  }
  return found
}

/**
 * Replays every key that has a stored outcome and compares the replayed value with the stored
 * text byte for byte; fn must not run. Returns what differed.
 */
export async function replayViolations(db: Kysely<any>, states: readonly KeyState[], scope: string): Promise<string[]> {
  const found: string[] = []
  for (const state of states) {
    if (state.status !== 'completed' && state.status !== 'failed') continue
    const outcome = await db.transaction().execute((tx) =>
      withIdempotency(tx, { scope, key: state.key, request: { key: state.key } }, () => {
        found.push(`${state.key}: fn ran again on a stored key`)
        return null
      }),
    )
    if (!outcome.replayed) found.push(`${state.key}: not replayed`)
    if (JSON.stringify(outcome.value) !== state.response) found.push(`${state.key}: replayed ${JSON.stringify(outcome.value)}, stored ${state.response}`)
    if (outcome.failed !== (state.status === 'failed')) found.push(`${state.key}: replayed failed=${outcome.failed}, stored ${state.status}`)
  }
  return found
}

/** Every invariant of the given keys: their committed state, then a replay of each. */
export async function invariantViolations(admin: Kysely<any>, keys: readonly string[], scope: string): Promise<string[]> {
  const states = await keyStates(admin, keys)
  return [...states.flatMap(stateViolations), ...(await replayViolations(admin, states, scope))]
}
