import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import express from 'express'
import { serve } from '@hono/node-server'
import Fastify from 'fastify'
import { Hono, type MiddlewareHandler } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expressIdempotency } from '../../src/http/express.ts'
import { idempotencyPlugin } from '../../src/http/fastify.ts'
import { honoIdempotency, keepRawBody } from '../../src/http/hono.ts'
import { useTestDatabase } from '../support/test-database.ts'

// What each framework does to a body before the handler sees it, and that the fingerprint is of
// the bytes the client sent all the same.
const database = useTestDatabase()
const closers: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const close of closers) await close()
})

async function listenExpress(app: express.Express): Promise<string> {
  const server = app.listen(0)
  await new Promise((resolve) => server.once('listening', resolve))
  closers.push(() => new Promise((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const send = (url: string, key: string, body: string, type = 'application/json') =>
  fetch(url, { method: 'POST', headers: { 'idempotency-key': key, 'content-type': type }, body })

describe('Express without a body parser', () => {
  let url: string
  const seen: unknown[] = []
  beforeAll(async () => {
    const app = express()
    const idempotent = expressIdempotency({ db: database.db })
    app.post('/raw', idempotent(async ({ request }) => {
      seen.push(request.body)
      return { status: 201, body: { length: (request.body as Buffer).length } }
    }))
    url = (await listenExpress(app)) + '/raw'
  })

  it('reads the body itself, fingerprints its bytes and leaves them in req.body as a Buffer', async () => {
    const key = randomUUID()
    const first = await send(url, key, '{"amount":9007199254740993}')
    expect(first.status).toBe(201)
    expect(Buffer.isBuffer(seen.at(-1))).toBe(true)
    expect((seen.at(-1) as Buffer).toString()).toBe('{"amount":9007199254740993}')
    expect((await send(url, key, '{"amount":9007199254740992}')).status).toBe(422)
    expect((await send(url, key, '{"amount":12}')).status).toBe(422)
    expect((await send(url, key, '{"amount":9007199254740993}')).headers.get('idempotent-replayed')).toBe('true')
  })
})

describe('Express with a JSON parser that does not keep the bytes', () => {
  let url: string
  let runs = 0
  beforeAll(async () => {
    const app = express()
    app.use(express.json())
    const idempotent = expressIdempotency({ db: database.db })
    app.post('/lossy', idempotent(async () => ({ status: 201, body: { run: ++runs } })))
    app.use((error: Error & { code?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ code: error.code })
    })
    url = (await listenExpress(app)) + '/lossy'
  })

  it('refuses to guess: a usage error names keepRawBody, and nothing runs', async () => {
    const response = await send(url, randomUUID(), '{"amount":1}')
    expect(response.status).toBe(500)
    expect(await response.json()).toEqual({ code: 'IDEMPOTENCY_USAGE' })
    expect(runs).toBe(0)
  })
})

describe('Fastify schema coercion', () => {
  let url: string
  let runs = 0
  const seen: unknown[] = []
  beforeAll(async () => {
    const app = Fastify()
    await app.register(idempotencyPlugin, { db: database.db })
    const schema = { body: { type: 'object', properties: { amount: { type: 'integer' }, note: { type: 'string' } } } }
    app.post('/coerced', { schema }, app.idempotent(async ({ request }) => {
      seen.push(request.body)
      return { status: 201, body: { run: ++runs } }
    }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    closers.push(() => app.close())
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/coerced`
  })

  it('fingerprints what the client sent, not what the schema coerced it to', async () => {
    const key = randomUUID()
    expect((await send(url, key, '{"amount":1,"note":"1"}')).status).toBe(201)
    const coerced = await send(url, key, '{"amount":"1","note":1}')
    // The schema turned both into { amount: 1, note: '1' }; the client sent another request.
    expect(seen.at(-1) ?? seen[0]).toEqual({ amount: 1, note: '1' })
    expect(coerced.status).toBe(422)
    const other = randomUUID()
    expect((await send(url, other, '{"amount":16}')).status).toBe(201)
    const hex = await send(url, other, '{"amount":"0x10"}')
    expect(seen.at(-1)).toEqual({ amount: 16 })
    expect(hex.status).toBe(422)
    expect(runs).toBe(2)
  })

  it('leaves requests without a key to Fastify alone', async () => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":"2"}' })
    expect(response.status).toBe(201)
    expect(seen.at(-1)).toEqual({ amount: 2 })
  })
})

describe('Hono with a middleware that parses the body first', () => {
  let base: string
  let runs = 0
  beforeAll(async () => {
    const app = new Hono()
    const idempotent = honoIdempotency({ db: database.db })
    const parseFirst: MiddlewareHandler = async (c, next) => {
      await c.req.json() // what validator('json') does
      await next()
    }
    const handler = idempotent(async ({ request: c }) => ({ status: 201, body: { run: ++runs, seen: await c.req.json() } }))
    app.post('/lossy', parseFirst, handler)
    app.post('/kept', keepRawBody(), parseFirst, handler)
    app.onError((error) => new Response(JSON.stringify({ code: (error as { code?: string }).code }), { status: 500 }))
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    closers.push(() => new Promise((resolve) => server.close(() => resolve())))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  it('refuses to guess from the parsed body: a usage error names keepRawBody, and nothing runs', async () => {
    const response = await send(base + '/lossy', randomUUID(), '{"amount":1}')
    expect(response.status).toBe(500)
    expect(await response.json()).toEqual({ code: 'IDEMPOTENCY_USAGE' })
    expect(runs).toBe(0)
  })

  it('fingerprints the bytes keepRawBody kept, and the middleware and handler still read the body', async () => {
    const key = randomUUID()
    const first = await send(base + '/kept', key, '{"amount":9007199254740993}')
    expect(first.status).toBe(201)
    expect(((await first.json()) as { seen: unknown }).seen).toEqual({ amount: 9007199254740992 })
    expect((await send(base + '/kept', key, '{"amount":9007199254740992}')).status).toBe(422)
    expect((await send(base + '/kept', key, '{"amount":9007199254740993}')).headers.get('idempotent-replayed')).toBe('true')
    const tooLarge = await send(base + '/kept', randomUUID(), JSON.stringify({ pad: 'x'.repeat(1024 * 1024) }))
    expect(tooLarge.status).toBe(413)
  })
})

describe('Hono on a route where the key is optional', () => {
  let base: string
  let runs = 0
  beforeAll(async () => {
    const app = new Hono()
    const idempotent = honoIdempotency({ db: database.db, maxBodyBytes: 1024 })
    app.post('/optional', idempotent(async ({ request: c }) => ({ status: 201, body: { run: ++runs, length: (await c.req.text()).length } })))
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
    })
    closers.push(() => new Promise((resolve) => server.close(() => resolve())))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  it('bounds the body of a request without a key too: past maxBodyBytes, declared or chunked, a 413 problem and the handler never runs', async () => {
    const declared = await fetch(base + '/optional', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(2000) })
    expect(declared.status).toBe(413)
    expect(((await declared.json()) as { type: string }).type).toMatch(/idempotency-request-too-large$/)
    const chunks = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(500)))
        controller.close()
      },
    })
    const chunked = await fetch(base + '/optional', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: chunks, duplex: 'half' } as RequestInit)
    expect(chunked.status).toBe(413)
    expect(runs).toBe(0)
    const small = await fetch(base + '/optional', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(1000) })
    expect(small.status).toBe(201)
    expect(await small.json()).toEqual({ run: 1, length: 1000 })
  })
})
