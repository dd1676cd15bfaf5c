import type { Context, Handler } from 'hono'
import { handleIdempotentRequest } from './handle-request.ts'
import { readHonoBody } from './hono-body.ts'
import { resolvePolicy, type IdempotencyHttpOptions, type IdempotencyPolicy } from './policy.ts'
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
 * const idempotent = honoIdempotency({ db, client: (c) => c.req.header('x-api-key') })
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

function targetOf(url: string): string {
  const parsed = new URL(url)
  return parsed.pathname + parsed.search
}

function toResponse(response: HttpResponse): Response {
  return new Response(serializeBody(response) ?? null, { status: response.status, headers: response.headers })
}
