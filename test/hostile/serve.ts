// A server for the hostile corpus, in a process of its own so that a request that blocks its
// event loop cannot stop the test's hang guard: `node serve.ts <express|fastify|hono|payments> <database url>`.
// Prints `listening <port>` once it accepts connections.
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono, type Context } from 'hono'
import { PgBoss } from 'pg-boss'
import { buildPaymentsApp } from '../../examples/payments/app.ts'
import { createPaymentsTables } from '../../examples/payments/schema.ts'
import { expressIdempotency, keepRawBody } from '../../src/http/express.ts'
import { idempotencyPlugin } from '../../src/http/fastify.ts'
import { honoIdempotency } from '../../src/http/hono.ts'
import type { HandlerResult } from '../../src/http/index.ts'
import { registerJobs } from '../../src/jobs/index.ts'
import { connect } from '../../tools/databases.ts'
import { createHostileTables, hostileRoutes, sharedOptions, type PlainRequest } from './adapter-routes.ts'

const [framework, databaseUrl] = process.argv.slice(2)
const db = connect(databaseUrl!, 10)
const first = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value)

async function startExpress(): Promise<number> {
  const app = express()
  // The common set-up: a JSON parser and nothing else (item 4: other bodies must still count).
  // Its own 100 KB limit answers 413 in HTML before the library sees the request; if item 8's fix
  // ships a parser or an error handler for the 413 problem, install it here.
  app.use(express.json({ verify: keepRawBody }))
  const idempotent = expressIdempotency({ ...sharedOptions, db, client: (req) => req.get('x-api-key') })
  const plain = (req: express.Request): PlainRequest => ({
    body: req.body,
    header: (name) => req.get(name),
    query: (name) => first(req.query[name] as string | string[] | undefined),
    client: req.get('x-api-key') ?? 'public',
  })
  const send = (res: express.Response, result: HandlerResult) => {
    res.status(result.status).set(result.headers ?? {}).json(result.body)
  }
  for (const route of hostileRoutes) {
    const { handler, plain: plainHandler } = route
    if (handler) app.post(route.path, idempotent(route.policy ?? {}, ({ tx, request }) => handler(tx, plain(request))))
    else if (plainHandler) app.post(route.path, async (req, res) => send(res, await plainHandler(db, plain(req))))
  }
  app.get('/h/health', (_req, res) => void res.json({ ok: true }))
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return (server.address() as AddressInfo).port
}

async function startFastify(): Promise<number> {
  const app = Fastify()
  // Bodies of any other type reach the route as bytes, as in a webhook receiver.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  await app.register(idempotencyPlugin, { ...sharedOptions, db, client: (request) => first(request.headers['x-api-key']) })
  const plain = (request: import('fastify').FastifyRequest): PlainRequest => ({
    body: request.body,
    header: (name) => first(request.headers[name]),
    query: (name) => first((request.query as Record<string, string | string[] | undefined>)[name]),
    client: first(request.headers['x-api-key']) ?? 'public',
  })
  for (const route of hostileRoutes) {
    const { handler, plain: plainHandler } = route
    if (handler) app.post(route.path, app.idempotent(route.policy ?? {}, ({ tx, request }) => handler(tx, plain(request))))
    else if (plainHandler) {
      app.post(route.path, async (request, reply) => {
        const result = await plainHandler(db, plain(request))
        return reply.code(result.status).headers(result.headers ?? {}).send(result.body)
      })
    }
  }
  app.get('/h/health', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

async function startHono(): Promise<number> {
  const app = new Hono()
  const idempotent = honoIdempotency({ ...sharedOptions, db, client: (c) => c.req.header('x-api-key') })
  const plain = async (c: Context): Promise<PlainRequest> => {
    const text = await c.req.text()
    let body: unknown
    try {
      body = /[/+]json\b/i.test(c.req.header('content-type') ?? '') && text !== '' ? JSON.parse(text) : text
    } catch {
      body = text
    }
    return { body, header: (name) => c.req.header(name), query: (name) => c.req.query(name), client: c.req.header('x-api-key') ?? 'public' }
  }
  for (const route of hostileRoutes) {
    const { handler, plain: plainHandler } = route
    if (handler) app.post(route.path, idempotent(route.policy ?? {}, async ({ tx, request }) => handler(tx, await plain(request))))
    else if (plainHandler) {
      app.post(route.path, async (c) => {
        const result = await plainHandler(db, await plain(c))
        return c.json(result.body as object, result.status as 200, result.headers)
      })
    }
  }
  app.get('/h/health', (c) => c.json({ ok: true }))
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
  })
  return (server.address() as AddressInfo).port
}

async function startPayments(): Promise<number> {
  await createPaymentsTables(db)
  const boss = new PgBoss({ connectionString: databaseUrl!, max: 4 })
  boss.on('error', () => {})
  await boss.start()
  await registerJobs(boss, { db, sweep: false, pollingIntervalSeconds: 0.5 })
  const app = await buildPaymentsApp(db, boss)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

if (framework !== 'payments') await createHostileTables(db)
const starters: Record<string, () => Promise<number>> = { express: startExpress, fastify: startFastify, hono: startHono, payments: startPayments }
const start = starters[framework!]
if (!start) throw new Error(`serve.ts: unknown framework ${framework}`)
process.stdout.write(`listening ${await start()}\n`)
