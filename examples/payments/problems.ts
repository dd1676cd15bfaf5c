// Every error the service answers is an RFC 9457 problem: the library's own, Fastify's (404,
// validation, a body it cannot parse), and the database's refusal of a value the request carried
// (a path id PostgreSQL cannot read as a uuid, a NUL character). No driver message or SQLSTATE
// ever reaches a response body.
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify'
import { IdempotencyError } from '../../src/index.ts'
import { DEFAULT_PROBLEM_TYPE_BASE, PROBLEM_CONTENT_TYPE, problemFromError } from '../../src/http/index.ts'

/** A problem of the service's own (`type` relative to the library's base, as its problems are). */
export function serviceProblem(status: number, type: string, title: string, extra: Record<string, unknown> = {}) {
  return {
    status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE },
    body: { type: DEFAULT_PROBLEM_TYPE_BASE + type, title, status, ...extra },
  }
}

export function sendProblem(reply: FastifyReply, problem: { status: number; headers: Record<string, string>; body: unknown }) {
  return reply.code(problem.status).headers(problem.headers).send(problem.body)
}

// SQLSTATE class 22, data exception: the database refused a value (22P02 not a uuid, 22021 a NUL
// byte, 22003 out of range). On this service such a value can only come from the request.
const isDataException = (error: unknown) => /^22[0-9A-Z]{3}$/.test(String((error as { code?: unknown }).code))

export function installProblemHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => sendProblem(reply, serviceProblem(404, 'not-found', `No route ${request.method} ${request.url.split('?')[0]}.`)))
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof IdempotencyError) return sendProblem(reply, problemFromError(DEFAULT_PROBLEM_TYPE_BASE, error, 422))
    if (error.validation) return sendProblem(reply, serviceProblem(400, 'request-invalid', 'The request is not valid', { detail: error.message }))
    // Fastify's own refusals (a body it cannot parse, a content type it does not take, too large).
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 && typeof error.code === 'string' && error.code.startsWith('FST_')) {
      return sendProblem(reply, serviceProblem(error.statusCode, 'request-invalid', 'The request is not valid', { detail: error.message }))
    }
    if (isDataException(error)) return sendProblem(reply, serviceProblem(400, 'request-invalid', 'The request carries a value the service cannot accept'))
    request.log.error(error)
    return sendProblem(reply, serviceProblem(500, 'internal-error', 'Internal server error'))
  })
}

/**
 * Server options for the refusals Fastify answers before any handler: a URL it cannot decode or a
 * path parameter past `maxParamLength` (`frameworkErrors`, 400 and 414), and a request Node's HTTP
 * parser refuses (`clientErrorHandler`: bad framing, bytes after a body shorter than its
 * Content-Length, headers too large). Both answer problem+json too, without echoing the request.
 */
export const problemServerOptions: Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler'> = {
  frameworkErrors: (error, _request, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400
    return sendProblem(reply, serviceProblem(status, 'request-invalid', status === 414 ? 'A path segment is too long' : 'The request URL is not valid'))
  },
  clientErrorHandler: (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
    const problem = serviceProblem(status, 'request-invalid', 'The request is not valid HTTP')
    const body = JSON.stringify(problem.body)
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    }
    socket.destroy(error)
  },
}
