import type { Context, Handler, MiddlewareHandler } from 'hono'
import { IdempotencyRequestBodyError } from '../errors.ts'
import { handleIdempotentRequest } from './handle-request.ts'
import { keepHonoBody, readHonoBody } from './hono-body.ts'
import { resolvePolicy, type IdempotencyHttpOptions, type IdempotencyPolicy } from './policy.ts'
import { DEFAULT_PROBLEM_TYPE_BASE, problemFromError } from './problem.ts'
import { DEFAULT_MAX_BODY_BYTES } from './request-body.ts'
import { routeArguments } from './route-arguments.ts'
import { serializeBody } from './serialize-body.ts'
import type { HttpResponse, IdempotentHandler } from './types.ts'

/**
 * Hono 4 routes whose handler runs in a transaction that also claims the request's key. For a
 * request with a key, the adapter reads the body's bytes for the fingerprint (within the route's
 * `maxBodyBytes`); the handler's `c.req.json()` reads them again.
 *
 * @example
 * ```ts
 * // The client is the id your authentication middleware established (here `c.get('apiKeyId')`,
 * // the id of the caller's API key), never the key itself.
 * const idempotent = honoIdempotency({ db, client: (c) => c.get('apiKeyId') })
 * app.post('/accounts/:id/deposits', idempotent({ required: true }, async ({ tx, request: c }) => {
 *   const { amount } = await c.req.json()
 *   return { status: 201, body: await deposit(tx, c.req.param('id'), amount) }
 * }))
 * ```
 */
export function honoIdempotency<DB>(options: IdempotencyHttpOptions<DB, Context>) {
  function idempotent(handler: IdempotentHandler<DB, Context>): Handler
  function idempotent(policy: IdempotencyPolicy, handler: IdempotentHandler<DB, Context>): Handler
  function idempotent(...args: [IdempotentHandler<DB, Context>] | [IdempotencyPolicy, IdempotentHandler<DB, Context>]): Handler {
    const [policy, handler] = routeArguments(args)
    const resolved = resolvePolicy(options, policy)
    return async (c: Context) => {
      // Hono has no body limit of its own: every request of the route's methods, with a key or
      // without, is held to maxBodyBytes before the handler can read it (the bytes are kept for it).
      // A body a middleware already read is that middleware's to limit.
      if (resolved.methods.has(c.req.method.toUpperCase()) && !c.req.raw.bodyUsed) {
        try {
          await keepHonoBody(c, resolved.body.maxBodyBytes)
        } catch (error) {
          if (error instanceof IdempotencyRequestBodyError) return toResponse(problemFromError(resolved.problemTypeBase, error, 422))
          throw error
        }
      }
      const response = await handleIdempotentRequest(
        resolved,
        {
          method: c.req.method,
          route: c.req.routePath,
          target: targetOf(c.req.url),
          header: (name) => c.req.header(name),
          readBody: (limit) => readHonoBody(c, limit),
          raw: c,
        },
        handler,
      )
      return toResponse(response)
    }
  }
  return idempotent
}

/**
 * Middleware that keeps the body's bytes for the fingerprint, for routes where another middleware
 * (Hono's `validator('json')`, zod-validator) reads the body before the idempotent handler: mount
 * it before that middleware. Reads at most `maxBodyBytes` (default 1 MiB), else answers `413`.
 *
 * @example
 * ```ts
 * app.post('/payments', keepRawBody(), zValidator('json', payment), idempotent(async ({ tx, request: c }) => ...))
 * ```
 */
export function keepRawBody(options: { maxBodyBytes?: number; problemTypeBase?: string } = {}): MiddlewareHandler {
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  return async (c, next) => {
    try {
      await keepHonoBody(c, limit)
    } catch (error) {
      if (error instanceof IdempotencyRequestBodyError) return toResponse(problemFromError(options.problemTypeBase ?? DEFAULT_PROBLEM_TYPE_BASE, error, 422))
      throw error
    }
    await next()
  }
}

function targetOf(url: string): string {
  const parsed = new URL(url)
  return parsed.pathname + parsed.search
}

function toResponse(response: HttpResponse): Response {
  return new Response(serializeBody(response) ?? null, { status: response.status, headers: response.headers })
}
