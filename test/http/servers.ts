import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono, type Context } from 'hono'
import { expressIdempotency, keepRawBody } from '../../src/http/express.ts'
import { idempotencyPlugin } from '../../src/http/fastify.ts'
import { honoIdempotency } from '../../src/http/hono.ts'
import { contractRoutes, type ContractApp, type ContractRoute } from './contract-routes.ts'

export interface RunningServer {
  url: string
  close(): Promise<void>
}

export type StartServer = (app: ContractApp, routes?: ContractRoute[]) => Promise<RunningServer>

export const startExpress: StartServer = async ({ db, insertItem }, routes = contractRoutes) => {
  const app = express()
  app.use(express.json({ verify: keepRawBody, limit: '2mb' }))
  const idempotent = expressIdempotency({ db, client: (req) => req.get('x-api-key') })
  for (const route of routes) {
    const { handler, plain } = route
    if (handler) app[route.method](route.path, idempotent(route.policy ?? {}, ({ tx, request, key, customer }) => handler({ tx, body: request.body, key, customer, insertItem: (name) => insertItem(tx, name) })))
    else if (plain) app[route.method](route.path, async (_req, res) => void res.json(await plain()))
  }
  const server = app.listen(0)
  await new Promise((resolve) => server.once('listening', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

export const startFastify: StartServer = async ({ db, insertItem }, routes = contractRoutes) => {
  const app = Fastify()
  // Every media type reaches the handler (as Express and Hono let it), so the contract can show
  // that a body the adapter did not parse as JSON is still fingerprinted.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  await app.register(idempotencyPlugin, { db, client: (request) => request.headers['x-api-key'] as string | undefined })
  for (const route of routes) {
    const { handler, plain } = route
    if (handler) app[route.method](route.path, app.idempotent(route.policy ?? {}, ({ tx, request, key, customer }) => handler({ tx, body: request.body, key, customer, insertItem: (name) => insertItem(tx, name) })))
    else if (plain) app[route.method](route.path, () => plain())
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() }
}

export const startHono: StartServer = async ({ db, insertItem }, routes = contractRoutes) => {
  const app = new Hono()
  const idempotent = honoIdempotency({ db, client: (c) => c.req.header('x-api-key') })
  for (const route of routes) {
    const { handler, plain } = route
    if (handler) app[route.method](route.path, idempotent(route.policy ?? {}, async ({ tx, request, key, customer }) => handler({ tx, body: request.req.method === 'GET' ? undefined : await honoBody(request), key, customer, insertItem: (name) => insertItem(tx, name) })))
    else if (plain) app[route.method](route.path, async (c) => c.json(await plain()))
  }
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

async function honoBody(c: Context): Promise<unknown> {
  return /^application\/json\s*(;|$)/.test(c.req.header('content-type') ?? '') ? c.req.json() : c.req.text()
}
