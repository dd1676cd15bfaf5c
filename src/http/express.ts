import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { readExpressBody } from './express-body.ts'
import { handleIdempotentRequest } from './handle-request.ts'
import { resolvePolicy, type IdempotencyHttpOptions, type IdempotencyPolicy } from './policy.ts'
import { routeArguments } from './route-arguments.ts'
import { serializeBody } from './serialize-body.ts'
import type { HttpResponse, IdempotentHandler } from './types.ts'

/**
 * Express 5 routes whose handler runs in a transaction that also claims the request's key.
 * The fingerprint is of the body's bytes: give every body parser `verify: keepRawBody`, or none
 * (the adapter then reads the body itself and leaves it in `req.body` as a Buffer).
 *
 * @example
 * ```ts
 * // The client is the id your authentication middleware established (here `req.apiKeyId`, the
 * // id of the caller's API key), never the key itself.
 * app.use(express.json({ verify: keepRawBody }))
 * const idempotent = expressIdempotency({ db, client: (req) => req.apiKeyId })
 * app.post('/accounts/:id/deposits', idempotent({ required: true }, async ({ tx, request }) => {
 *   const row = await tx.insertInto('ledger').values({ account_id: request.params.id, amount: request.body.amount })
 *     .returningAll().executeTakeFirstOrThrow()
 *   return { status: 201, body: row }
 * }))
 * ```
 */
export function expressIdempotency<DB>(options: IdempotencyHttpOptions<DB, Request>) {
  function idempotent(handler: IdempotentHandler<DB, Request>): RequestHandler
  function idempotent(policy: IdempotencyPolicy, handler: IdempotentHandler<DB, Request>): RequestHandler
  function idempotent(...args: [IdempotentHandler<DB, Request>] | [IdempotencyPolicy, IdempotentHandler<DB, Request>]): RequestHandler {
    const [policy, handler] = routeArguments(args)
    const resolved = resolvePolicy(options, policy)
    return async (req: Request, res: Response, next: NextFunction) => {
      try {
        const response = await handleIdempotentRequest(
          resolved,
          {
            method: req.method,
            route: req.baseUrl + (typeof req.route?.path === 'string' ? req.route.path : req.path),
            target: req.originalUrl,
            header: (name) => req.get(name),
            readBody: (limit) => readExpressBody(req, limit),
            raw: req,
          },
          handler,
        )
        send(res, response)
      } catch (error) {
        next(error)
      }
    }
  }
  return idempotent
}

function send(res: Response, response: HttpResponse): void {
  res.status(response.status)
  for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value)
  const body = serializeBody(response)
  if (body === undefined) res.end()
  else res.end(body)
}

export { keepRawBody } from './express-body.ts'
