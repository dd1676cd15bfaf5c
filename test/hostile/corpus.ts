import { readdirSync, readFileSync } from 'node:fs'

// The hostile-input corpus is data: test/hostile/corpus/<target>/*.json, each an array of
// entries. docs/testing.md ("The hostile-input corpus") describes the format; this file loads it
// and turns an entry's request into the bytes the raw client sends.

/** A header line as written: the value as UTF-8 text, raw bytes in hex, one text repeated, or null for a line with no colon. */
export type HeaderValue = string | { hex: string } | { repeat: [string, number] } | null
export type HeaderLine = [string, HeaderValue]

/** A body as UTF-8 text, a JSON value, raw bytes, or a generator: pieces each repeated n times. */
export type BodySpec = { text: string } | { json: unknown } | { base64: string } | { hex: string } | { repeat: [string, number][] }

export interface RawRequest {
  /** The whole message exactly as written (LF-only lines, an HTTP/2 preface): nothing else is used. */
  raw?: BodySpec
  /** Default POST. Written as given, so `post` or `FOO` reach the server as such. */
  method?: string
  /** The request target as written (UTF-8): `/a%00b`, `urn:uuid:...`, a NUL byte, 100 KB of it. */
  path?: string
  /** Default `HTTP/1.1`. */
  version?: string
  /** In order; duplicates allowed. Host, Connection: close and Content-Length are added unless present. */
  headers?: HeaderLine[]
  body?: BodySpec
  /**
   * `length` (default): Content-Length unless a Content-Length or Transfer-Encoding header is
   * given; `chunked`: the body sent in `chunkSize` chunks; `none`: the bytes exactly as given.
   */
  framing?: 'length' | 'chunked' | 'none'
  chunkSize?: number
  /** Send this many copies at once (a burst of retries of one request). */
  concurrent?: number
  /** End the connection's sending side after the bytes (a client that sent less than it promised). */
  halfClose?: boolean
}

export type ExpectedStatus = number | 'closed'

export interface Expectation {
  /** The documented status, or the statuses the issue leaves open (`'closed'`: no response at all). */
  status: ExpectedStatus | ExpectedStatus[]
  /** The problem `type`, relative to the type base (any of them). A refusal answers problem+json. */
  type?: string | string[]
  /** The problem's `code` (any of them). */
  code?: string | string[]
  /** The response must be problem+json, whatever its type. */
  problem?: boolean
  /** The problem `type` must not be this one (`idempotency-server-error`: "retry later"). */
  notType?: string
  /** Whether the response must (true) or must not (false) carry `Idempotent-Replayed: true`. */
  replayed?: boolean
  /** Response headers that must be absent. */
  headersAbsent?: string[]
  /** A regular expression the body must match. */
  bodyMatches?: string
  /** Texts (templated) the body must not contain: the entry's own earlier data it must not see. */
  bodyNotContains?: string[]
  /** The refusal is a stored answer (a final 4xx): it may write its key row. */
  stores?: boolean
}

export interface Step {
  request: RawRequest
  expect?: Expectation
  /** Variables taken from the JSON response: `{ "cust": "customer_id" }` (dotted paths). */
  capture?: Record<string, string>
  /** Repeat the request (every 50 ms, up to the hang guard) until the dotted path equals the value. */
  until?: { path: string; equals: unknown }
}

export interface Entry {
  name: string
  /** The issue item it guards: `"7"`, `"16"`, or `"scenario-3"` for a documented contract row. */
  item: string
  given?: Step[]
  request: RawRequest
  expect: Expectation
  then?: Step[]
  /** Only for these adapters (default: all of the target's). */
  only?: string[]
  note?: string
}

export interface Seed {
  /** The victim's requests; each response is the victim's data. `marker` paths capture more markers. */
  steps: (Step & { marker?: string[] })[]
}

const corpusDir = new URL('./corpus/', import.meta.url)

/** Every entry of a target's corpus, in file order, each with the file it came from. */
export function loadCorpus(target: 'adapters' | 'payments'): (Entry & { file: string })[] {
  const dir = new URL(`${target}/`, corpusDir)
  const entries: (Entry & { file: string })[] = []
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'seed.json').sort()) {
    for (const entry of JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as Entry[]) entries.push({ ...entry, file })
  }
  const names = new Set<string>()
  for (const entry of entries) {
    if (names.has(entry.name)) throw new Error(`hostile corpus: duplicate entry name ${JSON.stringify(entry.name)}`)
    names.add(entry.name)
  }
  return entries
}

export function loadSeed(target: 'adapters' | 'payments'): Seed {
  return JSON.parse(readFileSync(new URL(`${target}/seed.json`, corpusDir), 'utf8')) as Seed
}

export type Vars = Record<string, string>

/**
 * Replaces `{{name}}` with the variable and `{{c*N}}` with the character c N times (so a 100 KB
 * path stays one short line of the corpus); an unknown name is an error in the corpus.
 */
export function fill(text: string, vars: Vars): string {
  return text.replace(/\{\{(\w)\*(\d+)\}\}/g, (_, c: string, times: string) => c.repeat(Number(times))).replace(/\{\{([\w.]+)\}\}/g, (_, name: string) => {
    const value = vars[name]
    if (value === undefined) throw new Error(`hostile corpus: unknown variable {{${name}}}`)
    return value
  })
}

function bodyBytes(body: BodySpec | undefined, vars: Vars): Buffer | undefined {
  if (body === undefined) return undefined
  if ('text' in body) return Buffer.from(fill(body.text, vars), 'utf8')
  if ('json' in body) return Buffer.from(fill(JSON.stringify(body.json), vars), 'utf8')
  if ('base64' in body) return Buffer.from(body.base64, 'base64')
  if ('hex' in body) return Buffer.from(body.hex.replace(/\s+/g, ''), 'hex')
  return Buffer.from(body.repeat.map(([piece, times]) => fill(piece, vars).repeat(times)).join(''), 'utf8')
}

function headerBytes(value: HeaderValue, vars: Vars): Buffer | null {
  if (value === null) return null
  if (typeof value === 'string') return Buffer.from(fill(value, vars), 'utf8')
  if ('hex' in value) return Buffer.from(value.hex.replace(/\s+/g, ''), 'hex')
  return Buffer.from(fill(value.repeat[0], vars).repeat(value.repeat[1]), 'utf8')
}

/** The bytes of one request, with the defaults an ordinary client would add unless given. */
export function requestBytes(request: RawRequest, vars: Vars, port: number): Buffer {
  if (request.raw !== undefined) return bodyBytes(request.raw, vars)!
  const framing = request.framing ?? 'length'
  const body = bodyBytes(request.body, vars)
  const headers = (request.headers ?? []).map(([name, value]): [string, Buffer | null] => [name, headerBytes(value, vars)])
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name)
  if (framing !== 'none') {
    if (!has('host')) headers.unshift(['Host', Buffer.from(`127.0.0.1:${port}`)])
    if (!has('connection')) headers.push(['Connection', Buffer.from('close')])
  }
  let payload = body ?? Buffer.alloc(0)
  if (framing === 'length' && body !== undefined && !has('content-length') && !has('transfer-encoding')) {
    headers.push(['Content-Length', Buffer.from(String(body.length))])
  }
  if (framing === 'chunked') {
    if (!has('transfer-encoding')) headers.push(['Transfer-Encoding', Buffer.from('chunked')])
    const size = request.chunkSize ?? Math.max(payload.length, 1)
    const chunks: Buffer[] = []
    for (let at = 0; at < payload.length; at += size) {
      const piece = payload.subarray(at, at + size)
      chunks.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'))
    }
    chunks.push(Buffer.from('0\r\n\r\n'))
    payload = Buffer.concat(chunks)
  }
  const head: Buffer[] = [Buffer.from(`${request.method ?? 'POST'} ${fill(request.path ?? '/', vars)} ${request.version ?? 'HTTP/1.1'}\r\n`, 'utf8')]
  for (const [name, value] of headers) head.push(...(value === null ? [Buffer.from(name, 'utf8')] : [Buffer.from(`${name}: `, 'utf8'), value]), Buffer.from('\r\n'))
  head.push(Buffer.from('\r\n'))
  return Buffer.concat([...head, payload])
}

/** The value at a dotted path of a JSON value (`data.customer_id`, `0.id`); `a|b`: the first present. */
export function valueAt(value: unknown, path: string): unknown {
  if (path.includes('|')) return path.split('|').map((p) => valueAt(value, p)).find((v) => v !== undefined)
  let current = value
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined
    current = (current as Record<string, unknown>)[part]
  }
  return current
}
