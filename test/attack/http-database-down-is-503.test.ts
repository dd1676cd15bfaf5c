// The fault harness restarts PostgreSQL under an HTTP app. While it is down, or when a request's
// connection is lost at BEGIN (before the key is claimed), the request must be answered like a
// connection lost during the claim: a retryable 503 problem with Retry-After (the HTTP contract's
// rule), not the framework's 500 for an unknown error.
import { createServer, type AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import express from 'express'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expressIdempotency, keepRawBody } from '../../src/http/express.ts'
import { database } from '../../src/data/pg/index.ts'

let pool: pg.Pool
let server: Server
let base: string

async function unusedPort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${await unusedPort()}/none`, max: 2 })
  pool.on('error', () => {})
  const app = express()
  app.use(express.json({ verify: keepRawBody }))
  const idempotent = expressIdempotency({ db: database(pool), client: () => 'client-a' })
  app.post('/payments', idempotent({ required: true }, async () => ({ status: 201, body: { ok: true } })))
  server = app.listen(0)
  await new Promise((resolve) => server.once('listening', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve))
  await pool?.end()
})

describe('HTTP while the database is unreachable', () => {
  it('answers a retryable 503 problem with Retry-After', async () => {
    const response = await fetch(`${base}/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: JSON.stringify({ amount: 1 }),
    })
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('1')
    expect(await response.json()).toMatchObject({ code: 'IDEMPOTENCY_STORE_FAILED', retryable: true })
  })
})
