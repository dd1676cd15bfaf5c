import { randomBytes, randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { problemsWith, jsonOf, statuses } from './check-response.ts'
import { loadCorpus, loadSeed, requestBytes, valueAt, type Entry, type RawRequest, type Step, type Vars } from './corpus.ts'
import { sendRaw, type RawOutcome } from './raw-http.ts'
import { changedTables, snapshotTables } from './table-snapshot.ts'

/** A generous hang guard per request: a hang detector, not a performance threshold. */
export const HANG_GUARD_MS = 15_000

export interface CorpusTarget {
  /** `express`, `fastify`, `hono` or `payments`. */
  name: string
  corpus: 'adapters' | 'payments'
  port: number
  db: Kysely<any>
  /** Schemas whose tables must not change on a refusal. */
  schemas: string[]
  /** Resolves once the server answers again (after a request that hit the hang guard). */
  waitUntilResponsive(): Promise<void>
  /**
   * For a server that authenticates its callers (the example service): registers a client and
   * returns its API key. The victim is one such client, and each entry gets two fresh ones,
   * `{{client.key}}` and `{{attacker.key}}`. Without it, `X-Api-Key` is the client id itself.
   */
  registerClient?(name: string): Promise<string>
}

export interface CorpusFailure {
  item: string
  entry: string
  problems: string[]
}

export interface CorpusReport {
  target: string
  entries: number
  byExpectedStatus: Record<string, number>
  failures: CorpusFailure[]
  /** The slowest entries, for the printout (a hint, not a threshold). */
  slowest: { entry: string; ms: number }[]
}

/** The victim's values every entry may name, fresh per run. */
function victimVars(): Vars {
  return {
    marker: `VICTIM${randomBytes(8).toString('hex').toUpperCase()}`,
    'victim.client': 'victim',
    'victim.key': randomUUID(),
    'victim.requestId': randomUUID(),
    'victim.customerKey': randomUUID(),
    'victim.linkKey': randomUUID(),
    'victim.depositKey': randomUUID(),
    'victim.identifier': 'victim-customer',
  }
}

function entryVars(base: Vars, index: number): Vars {
  const uuid = randomUUID()
  const n = `${index}x${randomBytes(4).toString('hex')}`
  return { ...base, uuid, UUID: uuid.toUpperCase(), uuid2: randomUUID(), key: `key-${n}`, n }
}

// A server that refuses a large body before reading it (413) closes while the client is still
// sending; the client's failed write then tears the connection down, sometimes before the answer
// already received is read. Such a request is sent again (it changed nothing), up to five times.
const LARGE_BODY = 1_000_000
async function sendLarge(port: number, bytes: Buffer, halfClose: boolean | undefined): Promise<RawOutcome> {
  let outcome = await sendRaw(port, bytes, HANG_GUARD_MS, halfClose)
  for (let attempt = 1; attempt < 5 && outcome.kind === 'closed' && bytes.length > LARGE_BODY; attempt++) outcome = await sendRaw(port, bytes, HANG_GUARD_MS, halfClose)
  return outcome
}

async function send(target: CorpusTarget, request: RawRequest, vars: Vars): Promise<RawOutcome[]> {
  const bytes = requestBytes(request, vars, target.port)
  const copies = request.concurrent ?? 1
  const outcomes = await Promise.all(Array.from({ length: copies }, () => sendLarge(target.port, bytes, request.halfClose)))
  if (outcomes.some((o) => o.kind === 'timeout')) await target.waitUntilResponsive()
  return outcomes
}

/** Runs a set-up or follow-up step; its problems are the entry's. */
async function runStep(target: CorpusTarget, step: Step, vars: Vars, markers: string[], label: string): Promise<string[]> {
  const deadline = Date.now() + HANG_GUARD_MS
  for (;;) {
    const outcomes = await send(target, step.request, vars)
    const problems = outcomes.flatMap((o) => problemsWith(o, step.expect, vars, markers)).map((p) => `${label}: ${p}`)
    const json = jsonOf(outcomes[0]!)
    for (const [name, path] of Object.entries(step.capture ?? {})) {
      const value = valueAt(json, path)
      if (value === undefined || value === null) problems.push(`${label}: nothing to capture at ${path}`)
      else vars[`cap.${name}`] = String(value)
    }
    if (!step.until || valueAt(json, step.until.path) === step.until.equals) return problems
    if (Date.now() > deadline) return [...problems, `${label}: ${step.until.path} never became ${JSON.stringify(step.until.equals)}`]
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Sends the victim's requests; returns the variables and the marker strings of its data. */
async function seedVictim(target: CorpusTarget): Promise<{ vars: Vars; markers: string[] }> {
  const vars = victimVars()
  if (target.registerClient) vars['victim.client'] = await target.registerClient('victim')
  const markers = [vars.marker!]
  for (const [index, step] of loadSeed(target.corpus).steps.entries()) {
    const [outcome] = await send(target, step.request, vars)
    const problems = problemsWith(outcome!, step.expect, vars, [])
    if (problems.length > 0) throw new Error(`hostile corpus: victim step ${index} failed on ${target.name}: ${problems.join('; ')}`)
    const json = jsonOf(outcome!)
    for (const [name, path] of Object.entries(step.capture ?? {})) vars[`victim.${name}`] = String(valueAt(json, path))
    for (const path of step.marker ?? []) markers.push(String(valueAt(json, path)))
  }
  for (const [name, value] of Object.entries(vars)) vars[`${name}.upper`] = value.toUpperCase()
  return { vars, markers }
}

function applies(entry: Entry, target: CorpusTarget): boolean {
  return entry.only === undefined || entry.only.includes(target.name)
}

/** Runs every entry of the target's corpus in order and reports what failed. */
export async function runCorpus(target: CorpusTarget): Promise<CorpusReport> {
  const { vars: base, markers } = await seedVictim(target)
  const entries = loadCorpus(target.corpus).filter((entry) => applies(entry, target))
  const report: CorpusReport = { target: target.name, entries: entries.length, byExpectedStatus: {}, failures: [], slowest: [] }
  const timings: { entry: string; ms: number }[] = []
  for (const [index, entry] of entries.entries()) {
    const key = statuses(entry.expect).join('|')
    report.byExpectedStatus[key] = (report.byExpectedStatus[key] ?? 0) + 1
    const vars = entryVars(base, index)
    const problems: string[] = []
    const started = performance.now()
    try {
      if (target.registerClient) {
        vars['client.key'] = await target.registerClient(`client-${vars.n}`)
        vars['attacker.key'] = await target.registerClient(`attacker-${vars.n}`)
      }
      for (const [i, step] of (entry.given ?? []).entries()) problems.push(...(await runStep(target, step, vars, markers, `given ${i + 1}`)))
      const before = await snapshotTables(target.db, target.schemas)
      const outcomes = await send(target, entry.request, vars)
      for (const outcome of outcomes) problems.push(...problemsWith(outcome, entry.expect, vars, markers))
      // A burst in which one copy succeeds writes rows by design: only an all-refused send must not.
      const refused = outcomes.every((o) => o.kind === 'closed' || (o.kind === 'response' && o.status >= 400))
      if (refused && !entry.expect.stores) {
        const changed = changedTables(before, await snapshotTables(target.db, target.schemas))
        if (changed.length > 0) problems.push(`a refused request changed stored rows (${changed.join('; ')})`)
      }
      for (const [i, step] of (entry.then ?? []).entries()) problems.push(...(await runStep(target, step, vars, markers, `then ${i + 1}`)))
    } catch (error) {
      problems.push(`harness: ${(error as Error).message}`)
    }
    timings.push({ entry: entry.name, ms: Math.round(performance.now() - started) })
    if (problems.length > 0) report.failures.push({ item: entry.item, entry: entry.name, problems: [...new Set(problems)] })
  }
  report.slowest = timings.sort((a, b) => b.ms - a.ms).slice(0, 5)
  return report
}

/** The counts and a compact table of failures by item, as the test prints them. */
export function formatReport(report: CorpusReport): string {
  const lines = [`hostile corpus on ${report.target}: ${report.entries} entries, ${report.entries - report.failures.length} passed, ${report.failures.length} failed`]
  lines.push(`  by expected status: ${Object.entries(report.byExpectedStatus).sort().map(([s, n]) => `${s}: ${n}`).join(', ')}`)
  lines.push(`  slowest: ${report.slowest.map((s) => `${s.entry} (${s.ms} ms)`).join('; ')}`)
  const byItem = new Map<string, CorpusFailure[]>()
  for (const failure of report.failures) byItem.set(failure.item, [...(byItem.get(failure.item) ?? []), failure])
  if (byItem.size > 0) {
    lines.push('  failures by item:')
    for (const [item, failures] of [...byItem].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      lines.push(`    item ${item}: ${failures.length}`)
      for (const failure of failures) lines.push(`      - ${failure.entry}: ${failure.problems.join('; ')}`)
    }
  }
  return lines.join('\n')
}
