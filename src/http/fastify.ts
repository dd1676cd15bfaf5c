import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import fastifyPlugin from 'fastify-plugin'
import { addBodyHook, readFastifyBody, registerIdempotentHandler } from './fastify-body.ts'
import { handleIdempotentRequest } from './handle-request.ts'
import { resolvePolicy, type IdempotencyHttpOptions, type IdempotencyPolicy } from './policy.ts'
import { routeArguments } from './route-arguments.ts'
import { serializeBody } from './serialize-body.ts'
import type { IdempotentHandler } from './types.ts'

/** `app.idempotent(policy?, handler)`: a route handler whose work and key share a transaction. */
export interface IdempotentRouteFactory {
  <DB = any>(handler: IdempotentHandler<DB, FastifyRequest>): RouteHandlerMethod
  <DB = any>(policy: IdempotencyPolicy, handler: IdempotentHandler<DB, FastifyRequest>): RouteHandlerMethod
}

declare module 'fastify' {
  interface FastifyInstance {
    idempotent: IdempotentRouteFactory
  }
}

/**
 * Fastify 5 plugin: decorates the instance with `idempotent(policy?, handler)`.
 *
 * @example
 * ```ts
 * // The client is the id your authentication hook established (here `request.apiKeyId`, the id
 * // of the caller's API key), never the key itself.
 * await app.register(idempotencyPlugin, { db, client: (request) => request.apiKeyId })
 * app.post('/accounts/:id/deposits', app.idempotent({ required: true }, async ({ tx, request }) => {
 *   const row = await tx.insertInto('ledger').values(...).returningAll().executeTakeFirstOrThrow()
 *   return { status: 201, body: row }
 * }))
 * ```
 */
export const idempotencyPlugin: FastifyPluginAsync<IdempotencyHttpOptions<any, FastifyRequest>> = fastifyPlugin(
  async (app: FastifyInstance, options: IdempotencyHttpOptions<any, FastifyRequest>) => {
    const { db, client, schema, problemTypeBase, ...defaults } = options
    const shared = { db, client, schema, problemTypeBase, ...defaults }
    app.addHook('onRoute', addBodyHook)
    app.decorate('idempotent', ((...args: [IdempotentHandler<any, FastifyRequest>] | [IdempotencyPolicy, IdempotentHandler<any, FastifyRequest>]) => {
      const [policy, handler] = routeArguments(args)
      const resolved = resolvePolicy(shared, policy)
      const route = async (request: FastifyRequest, reply: FastifyReply) => {
        const response = await handleIdempotentRequest(
          resolved,
          {
            method: request.method,
            route: request.routeOptions.url ?? request.url,
            target: request.url,
            header: (name) => {
              const value = request.headers[name]
              return Array.isArray(value) ? value[0] : value
            },
            readBody: () => readFastifyBody(request),
            raw: request,
          },
          handler,
        )
        reply.code(response.status).headers(response.headers)
        return reply.send(serializeBody(response))
      }
      registerIdempotentHandler(route, resolved)
      return route
    }) as IdempotentRouteFactory)
  },
  { fastify: '5.x', name: 'pg-idempotency' },
)
