// The fingerprint's cost: on the hot path (a typical small body, every keyed request), and on
// hostile bodies, as time per MB at several sizes and depths. Linear means the time per MB stays
// flat as the size grows; the ratio column shows it against the smallest size.
//
//   npm run bench:fingerprint
import { fingerprintRequest } from '../src/fingerprint.ts'
import { fingerprintBody, type BodyRules } from '../src/http/body-fingerprint.ts'
import { ignoredFieldsOf } from '../src/canonical-json.ts'
import { IdempotencyErrorCode } from '../src/errors.ts'
import { MAX_JSON_DEPTH, toJsonText } from '../src/json.ts'
import { fixed, median, table } from './stats.ts'

const cpuMicros = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}

/** Median CPU microseconds per call over `rounds` rounds of `calls` calls. */
function measure(calls: number, rounds: number, run: () => unknown): number {
  for (let i = 0; i < calls; i++) run() // warm-up
  const perCall: number[] = []
  for (let round = 0; round < rounds; round++) {
    const start = cpuMicros()
    for (let i = 0; i < calls; i++) run()
    perCall.push((cpuMicros() - start) / calls)
  }
  return median(perCall)
}

// 1. The hot path: a payment-sized body, as every keyed request pays it.
const payment = JSON.stringify({
  amount: 1250,
  currency: 'EUR',
  description: 'Invoice 2024-118 for consulting services',
  metadata: { order: 'ord_8e03978e', customer: 'cus_42', tags: ['a', 'b'] },
  destination: { iban: 'DE89370400440532013000', name: 'Jane Doe' },
})
const paymentBytes = Buffer.from(payment)
const parsed = JSON.parse(payment)
const rules: BodyRules = { maxBodyBytes: 1 << 20, maxBodyDepth: 100, ignoredFields: ignoredFieldsOf([]) }
const request = { method: 'POST', target: '/accounts/42/deposits' }

const hot: string[][] = []
for (let round = 0; round < 3; round++) {
  // Interleaved, so a neighbour's load falls on both sides alike.
  const jcs = measure(20_000, 5, () => fingerprintRequest({ ...request, body: parsed }))
  const bytes = measure(20_000, 5, () => fingerprintRequest({ ...request, body: fingerprintBody({ bytes: paymentBytes, contentType: 'application/json' }, rules) }))
  hot.push([`round ${round + 1}`, fixed(jcs, 2), fixed(bytes, 2), fixed(bytes / jcs, 2)])
}
console.log(`The hot path: fingerprint of one ${paymentBytes.length}-byte JSON body, CPU microseconds per request (median of 5 x 20,000)`)
console.log('(withIdempotency: RFC 8785 of the parsed value; HTTP: the canonical bytes, then the small request object)\n')
console.log(table(['', 'withIdempotency, parsed value', 'HTTP adapters, bytes', 'HTTP / parsed'], hot))

// 2. Hostile bodies: time per MB as size grows, at several depths.
function nestedArrays(depth: number, bytes: number): string {
  const unit = '['.repeat(depth) + ']'.repeat(depth)
  return `[${Array(Math.max(1, Math.floor(bytes / (unit.length + 1)))).fill(unit).join(',')}]`
}
function flatObjects(bytes: number): string {
  const unit = '{"amount":9007199254740993,"note":"caf\\u00e9 \\"x\\"","b":true,"z":[1,2.5e-3,null]}'
  return `[${Array(Math.floor(bytes / (unit.length + 1))).fill(unit).join(',')}]`
}
const sizes = [0.25, 0.5, 1, 2]
const shapes: Array<[string, (bytes: number) => string, number]> = [
  ['flat objects', flatObjects, 100],
  ['a flat array of 0s (one value per 2 bytes)', (bytes) => `[${'0,'.repeat(Math.floor(bytes / 2) - 1)}0]`, 100],
  ['arrays nested 100 deep', (bytes) => nestedArrays(99, bytes), 100],
  ['arrays nested 1000 deep', (bytes) => nestedArrays(999, bytes), 1000],
]
const MB = 1_000_000
console.log(`\nHostile bodies: milliseconds of CPU per MB (median of 5), and the ratio to the ${sizes[0]} MB row\n`)
const rows: string[][] = []
for (const [name, make, depth] of shapes) {
  const bodyRules = { ...rules, maxBodyBytes: 4 * MB, maxBodyDepth: depth }
  let firstFingerprint = 0
  let firstStore = 0
  for (const size of sizes) {
    const text = make(size * MB)
    const bytes = Buffer.from(text)
    const value = JSON.parse(text)
    const megabytes = bytes.length / MB
    const fingerprint = (measure(1, 5, () => fingerprintBody({ bytes, contentType: 'application/json' }, bodyRules)) / 1000) / megabytes
    const store = (measure(1, 5, () => toJsonText(value, IdempotencyErrorCode.RESULT_INVALID)) / 1000) / megabytes
    firstFingerprint ||= fingerprint
    firstStore ||= store
    rows.push([`${name}, ${size} MB`, fixed(fingerprint, 1), fixed(fingerprint / firstFingerprint, 2), fixed(store, 1), fixed(store / firstStore, 2)])
  }
}
console.log(table(['body', 'fingerprint ms/MB', 'ratio', `store (toJsonText) ms/MB`, 'ratio'], rows))
console.log(`\nDepth is bounded: a request body by the route's maxBodyDepth (default 100, at most ${MAX_JSON_DEPTH}), a stored value by ${MAX_JSON_DEPTH}.`)
