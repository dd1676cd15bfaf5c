// Every error the service answers is an RFC 9457 problem with a stable `code`: its own refusals,
// Express's (a body it cannot parse, an unknown route), and the library's (the express adapter
// answers those itself, under the same `type` base). No driver message or SQLSTATE ever reaches a
// response body; anything unexpected is a bare 500, logged on the server.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express'

export const PROBLEM_TYPE_BASE = 'https://billing.example/problems/'
const PROBLEM_CONTENT_TYPE = 'application/problem+json'

export interface Problem {
  status: number
  headers: Record<string, string>
  body: { type: string; title: string; status: number; code: string; detail?: string }
}

/** A problem of the service's own: `type` is its `code` in kebab case (`INVOICE_NOT_FOUND`: `invoice-not-found`). */
export function problem(status: number, code: string, title: string, detail?: string): Problem {
  const type = PROBLEM_TYPE_BASE + code.toLowerCase().replaceAll('_', '-')
  return { status, headers: { 'content-type': PROBLEM_CONTENT_TYPE }, body: { type, title, status, code, ...(detail === undefined ? {} : { detail }) } }
}

/** A request the service cannot take; `detail` is the service's own sentence, never the input echoed. */
export const invalidRequest = (detail: string) => problem(400, 'REQUEST_INVALID', 'The request is not valid', detail)

export function sendProblem(res: Response, { status, headers, body }: Problem): void {
  res.status(status).set(headers).send(JSON.stringify(body))
}

export const routeNotFound: RequestHandler = (_req, res) => sendProblem(res, problem(404, 'NOT_FOUND', 'No such route'))

// SQLSTATE class 22, data exception (22P02 not a uuid, 22021 a NUL byte): a value from the request
// that validation let through. Drizzle 0.44+ wraps the driver's error; its SQLSTATE is on `cause`.
const isDataException = (error: unknown) => {
  const { code, cause } = (error ?? {}) as { code?: unknown; cause?: { code?: unknown } }
  return /^22[0-9A-Z]{3}$/.test(String(code ?? cause?.code))
}

export const problemHandler: ErrorRequestHandler = (error, _req, res, _next) => {
  const status = (error as { status?: unknown }).status
  // Express's own refusals (a body that is not JSON or too large, a path it cannot decode) carry their 4xx.
  if (typeof status === 'number' && status >= 400 && status < 500) return sendProblem(res, problem(status, 'REQUEST_INVALID', 'The request is not valid'))
  if (isDataException(error)) return sendProblem(res, invalidRequest('The request carries a value the service cannot store.'))
  console.error(error)
  sendProblem(res, problem(500, 'INTERNAL_ERROR', 'Internal server error'))
}
