import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { honoIdempotency } from '../../src/http/hono.ts'
import { useTestDatabase } from '../support/test-database.ts'

// Hono has no body limit of its own: on a route where the key is optional, a request without a
// key reached the handler's c.req.json() with no limit at all (the corpus's 5 MB entry got 201).
const database = useTestDatabase()
const runs = { count: 0 }
let url = ''
let server: ReturnType<typeof serve>

beforeAll(async () => {
  const app = new Hono()
  const idempotent = honoIdempotency({ db: database.db, client: (c) => c.req.header('x-api-key'), maxBodyBytes: 1024 })
  app.post('/optional', idempotent(async ({ request: c }) => {
    runs.count++
    const body = await c.req.text()
    return { status: 201, body: { length: body.length } }
  }))
  server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
  })
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((resolve) => server?.close(() => resolve(undefined)))
})

describe('Hono: maxBodyBytes without a key', () => {
  it('refuses a body over the limit with a 413 problem before the handler reads it', async () => {
    const before = runs.count
    const response = await fetch(url + '/optional', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'a'.repeat(5000) })
    expect(response.status).toBe(413)
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(runs.count).toBe(before)
  })

  it('refuses a chunked body (no Content-Length) over the limit the same way', async () => {
    const before = runs.count
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode('a'.repeat(500)))
        controller.close()
      },
    })
    const response = await fetch(url + '/optional', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: chunks, duplex: 'half' } as RequestInit)
    expect(response.status).toBe(413)
    expect(runs.count).toBe(before)
  })

  it('still hands a body within the limit to the handler', async () => {
    const response = await fetch(url + '/optional', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'a'.repeat(1000) })
    expect(response.status).toBe(201)
    expect(await response.json()).toEqual({ length: 1000 })
  })
})
