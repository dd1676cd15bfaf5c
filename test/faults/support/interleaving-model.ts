// The randomized interleaving model: N workers run random requests (see model-ops.ts) on M keys
// at once, on random pools, isolation levels and savepoint settings. After each interleaving it
// checks that every key ran at most once and that every success returned, and replays, the
// stored value byte for byte. Seeded: the same seed makes the same requests (the scheduling of
// the server and the event loop still varies, which is the point).
import type { IsolationLevel, Kysely } from 'kysely'
import { IdempotencyError, IdempotencyErrorCode } from '../../../src/index.ts'
import { invariantViolations, keyStates, type KeyState } from './invariants.ts'
import { CONNECTION_FAULTS, OPS, runRequest, type Op, type Request, type Seen } from './model-ops.ts'
import { describeError, isStableCode, libraryErrorIn } from './typed-errors.ts'

export interface ModelOptions {
  seed: number
  interleavings: number
  workers: number
  keys: number
  requestsPerWorker: number
  /** The pools requests go through, by name; the model picks one per request. */
  pools: Record<string, Kysely<any>>
  /** A connection of the test's own, for kills, counts and replays. */
  admin: Kysely<any>
  /** Ops to leave out (a pooler that cannot carry them, say). */
  without?: readonly Op[]
  /** Arms the proxy the pools go through to drop the next COMMIT's reply; without it that op is left out. */
  cutCommitReply?: () => void
  /** Runs beside each interleaving's requests (a server restart, say); awaited before the checks. */
  during?: (interleaving: number, inFlight: () => number) => Promise<void>
  /** Called after each interleaving. */
  progress?: (done: number) => void
}

export interface ModelReport {
  seed: number
  interleavings: number
  requests: number
  byOp: Record<string, number>
  firstRuns: number
  replays: number
  failedOutcomes: number
  errors: Record<string, number>
  unknownOutcomes: number
  /** At-most-once, all-or-nothing and replay breaches: must be empty. */
  violations: string[]
  /** Library errors that are untyped, or not retryable after a lost connection (item 11). */
  errorViolations: string[]
  elapsedMs: number
}

/** A small, fast PRNG (mulberry32): the same seed gives the same sequence. */
export function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ISOLATIONS: [IsolationLevel, number][] = [['read committed', 6], ['repeatable read', 2], ['serializable', 2]]

function pick<T>(next: () => number, weighted: [T, number][]): T {
  const total = weighted.reduce((sum, [, weight]) => sum + weight, 0)
  let roll = next() * total
  for (const [value, weight] of weighted) if ((roll -= weight) < 0) return value
  return weighted[weighted.length - 1]![0]
}

export async function runModel(options: ModelOptions): Promise<ModelReport> {
  const next = random(options.seed)
  const without: Op[] = [...(options.without ?? []), ...(options.cutCommitReply ? [] : ["COMMIT's reply lost" as const])]
  const ops = (Object.entries(OPS) as [Op, number][]).filter(([op]) => !without.includes(op))
  const pools = Object.keys(options.pools)
  const report: ModelReport = {
    seed: options.seed,
    interleavings: 0,
    requests: 0,
    byOp: {},
    firstRuns: 0,
    replays: 0,
    failedOutcomes: 0,
    errors: {},
    unknownOutcomes: 0,
    violations: [],
    errorViolations: [],
    elapsedMs: 0,
  }
  const started = Date.now()
  const nonce = `${options.seed.toString(36)}-${started.toString(36)}`
  for (let i = 0; i < options.interleavings; i++) {
    const scope = `faults:model:${nonce}`
    const keys = Array.from({ length: options.keys }, (_, k) => `${nonce}:${i}:${k}`)
    // The dice are thrown before anything runs, so the requests depend on the seed alone.
    const plans: Request[][] = Array.from({ length: options.workers }, () =>
      Array.from({ length: options.requestsPerWorker }, () => ({
        op: pick(next, ops),
        key: keys[Math.floor(next() * keys.length)]!,
        scope,
        pool: pools[Math.floor(next() * pools.length)]!,
        isolation: pick(next, ISOLATIONS),
        savepoint: next() < 0.5,
      })),
    )
    let inFlight = 0
    const workers = plans.map(async (plan) => {
      const seen: Seen[] = []
      for (const request of plan) {
        inFlight++
        seen.push(await runRequest(options.pools[request.pool]!, options.admin, request, options.cutCommitReply))
        inFlight--
      }
      return seen
    })
    const [results] = await Promise.all([Promise.all(workers), options.during?.(i, () => inFlight)])
    const seen = results.flat()
    tally(report, seen)
    const states = await keyStates(options.admin, keys)
    report.violations.push(...keyViolations(states, seen).map((v) => `interleaving ${i}: ${v}`))
    report.violations.push(...(await invariantViolations(options.admin, keys, scope)).map((v) => `interleaving ${i}: ${v}`))
    report.errorViolations.push(...seen.flatMap(errorViolations).map((v) => `interleaving ${i}: ${v}`))
    report.interleavings++
    options.progress?.(report.interleavings)
  }
  report.elapsedMs = Date.now() - started
  return report
}

function tally(report: ModelReport, seen: Seen[]): void {
  for (const s of seen) {
    report.requests++
    report.byOp[s.request.op] = (report.byOp[s.request.op] ?? 0) + 1
    if (s.unknownOutcome) report.unknownOutcomes++
    if (s.committed && s.outcome) {
      if (s.outcome.replayed) report.replays++
      else report.firstRuns++
      if (s.outcome.failed) report.failedOutcomes++
    }
    const error = s.thrown ?? s.rejection
    if (error !== undefined) {
      const typed = libraryErrorIn(error)
      const label = typed ? typed.code : s.thrownByFn ? "fn's own error" : 'driver error (connection lost, COMMIT failed)'
      report.errors[label] = (report.errors[label] ?? 0) + 1
    }
  }
}

/** What the requests saw against what the database holds, per key. */
export function keyViolations(states: KeyState[], seen: Seen[]): string[] {
  const found: string[] = []
  for (const state of states) {
    const mine = seen.filter((s) => s.request.key === state.key)
    const firsts = mine.filter((s) => s.committed && s.outcome && !s.outcome.replayed)
    if (firsts.length > 1) found.push(`${state.key}: ${firsts.length} committed first calls`)
    for (const s of mine.filter((s) => s.committed && s.outcome)) {
      // Every success, first call or replay, returned exactly what is stored.
      if (JSON.stringify(s.outcome!.value) !== state.response) {
        found.push(`${state.key}: ${s.request.op} returned ${JSON.stringify(s.outcome!.value)}, stored ${state.response}`)
      }
    }
    const stored = state.status === 'completed' || state.status === 'failed'
    // Only a COMMIT whose answer was lost can store a key without the client knowing.
    if (stored && firsts.length === 0 && !mine.some((s) => s.unknownOutcome && s.outcome?.replayed === false)) {
      found.push(`${state.key}: stored (${state.status}) although no request committed a first call`)
    }
  }
  return found
}

/** Every error of the library's is typed with a stable code, and retryable where it should be. */
function errorViolations(s: Seen): string[] {
  const found: string[] = []
  const what = `${s.request.op} (${s.request.pool}, ${s.request.isolation}, savepoint ${s.request.savepoint})`
  if (s.thrown !== undefined && !s.thrownByFn && !(s.thrown instanceof IdempotencyError)) {
    found.push(`${what}: withIdempotency threw an untyped error: ${describeError(s.thrown)}`)
  }
  const typed = libraryErrorIn(s.thrown) ?? libraryErrorIn(s.rejection)
  if (!typed) return found
  if (!isStableCode(typed.code)) found.push(`${what}: unknown code ${typed.code}`)
  const transient = typed.code === IdempotencyErrorCode.KEY_IN_PROGRESS || typed.code === IdempotencyErrorCode.SNAPSHOT_CONFLICT
  if ((transient || CONNECTION_FAULTS.includes(s.request.op)) && !typed.retryable) {
    found.push(`${what}: ${describeError(typed)} is not retryable`)
  }
  return found
}

/** The report as a few lines of figures. */
export function formatReport(report: ModelReport): string {
  const counts = (record: Record<string, number>) =>
    Object.entries(record)
      .sort(([, a], [, b]) => b - a)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')
  return [
    `seed ${report.seed}: ${report.interleavings} interleavings, ${report.requests} requests in ${(report.elapsedMs / 1000).toFixed(1)} s`,
    `  requests: ${counts(report.byOp)}`,
    `  committed: ${report.firstRuns} first runs, ${report.replays} replays (${report.failedOutcomes} of them stored failures); ${report.unknownOutcomes} unknown outcomes`,
    `  errors: ${counts(report.errors)}`,
    `  violations: ${report.violations.length} (at most once, all or nothing, replays); error typing: ${report.errorViolations.length}`,
  ].join('\n')
}
