import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { validate as isUuid, version as uuidVersion } from 'uuid'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { idempotentFetch, parseRetryAfter, withRetries } from '../src/client/index.ts'

type Reply = (req: IncomingMessage, res: ServerResponse) => void

// A real server that fails on purpose, following a script of replies, one per request.
let server: Server
let url: string
let script: Reply[] = []
let seen: Array<{ key: string | undefined; body: string }> = []

const status = (code: number, headers: Record<string, string> = {}): Reply => (_req, res) => {
  res.writeHead(code, headers).end(JSON.stringify({ code }))
}
const dropConnection: Reply = (req) => req.socket.destroy()

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      seen.push({ key: req.headers['idempotency-key'] as string | undefined, body })
      const reply = script.shift() ?? status(201)
      reply(req, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/deposits`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))
beforeEach(() => {
  script = []
  seen = []
})

/** Records the delays asked for instead of waiting them. */
function recordingSleep() {
  const delays: number[] = []
  return { delays, sleep: async (ms: number) => void delays.push(ms) }
}

const deposit = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 100 }) }

describe('idempotentFetch', () => {
  it('makes one UUID v4 key per operation and sends it on every retry of 5xx and network errors', async () => {
    script = [status(503), dropConnection, status(502)]
    const { sleep } = recordingSleep()
    const response = await idempotentFetch(url, deposit, { sleep })
    expect(response.status).toBe(201)
    expect(seen).toHaveLength(4)
    const keys = new Set(seen.map((s) => s.key))
    expect(keys.size).toBe(1)
    const [key] = [...keys]
    expect(isUuid(key!) && uuidVersion(key!)).toBe(4)
    expect(new Set(seen.map((s) => s.body))).toEqual(new Set([deposit.body]))
  })

  it('makes a new key for each operation', async () => {
    await idempotentFetch(url, deposit)
    await idempotentFetch(url, deposit)
    expect(seen[0]!.key).not.toBe(seen[1]!.key)
  })

  it('honours Retry-After on 429 and on a 409 that says in progress', async () => {
    script = [status(429, { 'retry-after': '2' }), status(409, { 'retry-after': '3' })]
    const { delays, sleep } = recordingSleep()
    const response = await idempotentFetch(url, deposit, { sleep, random: () => 0 })
    expect(response.status).toBe(201)
    expect(delays).toEqual([2000, 3000])
  })

  it.each([400, 401, 404, 409, 422])('never retries a %i that does not say retry', async (code) => {
    script = [status(code)]
    const response = await idempotentFetch(url, deposit, { sleep: async () => {} })
    expect(response.status).toBe(code)
    expect(seen).toHaveLength(1)
  })

  it('backs off exponentially with full jitter, capped', async () => {
    script = Array.from({ length: 5 }, () => status(500))
    const { delays, sleep } = recordingSleep()
    await idempotentFetch(url, deposit, { sleep, random: () => 0.5, baseDelay: 100, maxDelay: 300, maxAttempts: 6 })
    // Half of each cap: caps 100, 200, 300 (capped), 300, 300.
    expect(delays).toEqual([50, 100, 150, 150, 150])
  })

  it('stops after maxAttempts and returns the last response', async () => {
    script = Array.from({ length: 10 }, () => status(503))
    const response = await idempotentFetch(url, deposit, { sleep: async () => {}, maxAttempts: 3 })
    expect(response.status).toBe(503)
    expect(seen).toHaveLength(3)
  })

  it('starts no attempt whose wait would pass maxElapsed', async () => {
    script = [status(503, { 'retry-after': '60' })]
    const response = await idempotentFetch(url, deposit, { sleep: async () => {}, maxElapsed: '5s' })
    expect(response.status).toBe(503)
    expect(seen).toHaveLength(1)
  })

  it('throws the last network error when every attempt fails to connect', async () => {
    script = Array.from({ length: 3 }, () => dropConnection)
    await expect(idempotentFetch(url, deposit, { sleep: async () => {}, maxAttempts: 3 })).rejects.toBeInstanceOf(TypeError)
    expect(seen).toHaveLength(3)
  })

  it('stops at once when its AbortSignal fires during a wait', async () => {
    script = [status(503, { 'retry-after': '30' })]
    const controller = new AbortController()
    const attempt = idempotentFetch(url, deposit, { signal: controller.signal, maxElapsed: '60s' })
    // Abort once the first answer is in, while the client waits out the 30 s Retry-After.
    while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    controller.abort(new Error('user cancelled'))
    await expect(attempt).rejects.toThrow('user cancelled')
    expect(seen).toHaveLength(1)
  })

  it('sends the key as a Structured Field string when asked, and refuses a streamed body', async () => {
    await idempotentFetch(url, deposit, { key: 'abc', keyStyle: 'structured' })
    expect(seen[0]!.key).toBe('"abc"')
    const stream = new ReadableStream()
    await expect(idempotentFetch(url, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)).rejects.toThrow(/stream/)
  })
})

describe('withRetries and Retry-After', () => {
  it('reads delay-seconds and HTTP dates', () => {
    const now = Date.parse('2026-11-23T10:00:00Z')
    expect(parseRetryAfter('120', now)).toBe(120_000)
    expect(parseRetryAfter('Mon, 23 Nov 2026 10:00:30 GMT', now)).toBe(30_000)
    expect(parseRetryAfter('yesterday', now)).toBeUndefined()
    expect(parseRetryAfter(null, now)).toBeUndefined()
  })

  it('rethrows an error the decision says not to retry', async () => {
    let attempts = 0
    const failing = withRetries(
      async () => {
        attempts++
        throw new RangeError('bug')
      },
      () => ({ retry: false }),
    )
    await expect(failing).rejects.toBeInstanceOf(RangeError)
    expect(attempts).toBe(1)
  })
})
