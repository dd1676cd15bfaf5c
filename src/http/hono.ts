import type { Context, Handler } from 'hono'
import { IdempotencyErrorCode } from '../errors.ts'
import { handleIdempotentRequest } from './handle-request.ts'
import { resolvePolicy, type IdempotencyHttpOptions, type IdempotencyPolicy } from './policy.ts'
import { problem, ProblemType } from './problem.ts'
import { routeArguments } from './route-arguments.ts'
import { serializeBody } from './serialize-body.ts'
import type { HttpResponse, IdempotentHandler } from './types.ts'

/**
 * Hono 4 routes whose handler runs in a transaction that also claims the request's key. The
 * adapter reads the JSON body for the fingerprint; Hono caches it, so `c.req.json()` in the
 * handler reads it again for free.
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
      let body: unknown
      try {
        body = await readJsonBody(c)
      } catch {
        return toResponse(problem(resolved.problemTypeBase, ProblemType.REQUEST_INVALID, 400, 'The request body is not valid JSON.', { code: IdempotencyErrorCode.REQUEST_INVALID }))
      }
      const response = await handleIdempotentRequest(
        resolved,
        { method: c.req.method, route: c.req.routePath, target: targetOf(c.req.url), header: (name) => c.req.header(name), body, raw: c },
        handler,
      )
      return toResponse(response)
    }
  }
  return idempotent
}

async function readJsonBody(c: Context): Promise<unknown> {
  if (!/[/+]json\b/i.test(c.req.header('content-type') ?? '')) return undefined
  const text = await c.req.text()
  return text === '' ? undefined : JSON.parse(text)
}

function targetOf(url: string): string {
  const parsed = new URL(url)
  return parsed.pathname + parsed.search
}

function toResponse(response: HttpResponse): Response {
  return new Response(serializeBody(response) ?? null, { status: response.status, headers: response.headers })
}
