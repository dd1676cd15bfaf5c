import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { IdempotencyRequestBodyError, IdempotencyUsageError } from '../errors.ts'
import type { ResolvedPolicy } from './policy.ts'
import { problemFromError } from './problem.ts'
import { readLimited, type RequestBody } from './request-body.ts'
import { serializeBody } from './serialize-body.ts'

const policies = new WeakMap<object, ResolvedPolicy<any, any>>()
const rawBodies = new WeakMap<FastifyRequest, Uint8Array>()

/** Marks `handler` as an idempotent route's, so the body hook keeps its requests' bytes. */
export function registerIdempotentHandler(handler: object, policy: ResolvedPolicy<any, any>): void {
  policies.set(handler, policy)
}

/**
 * An `onRoute` hook: gives each idempotent route a `preParsing` hook that keeps its body's bytes.
 * A route's handler is marked by {@link registerIdempotentHandler}; other routes are left alone.
 */
export function addBodyHook(route: RouteOptions): void {
  const policy = policies.get(route.handler)
  if (policy === undefined) return
  const existing = route.preParsing === undefined ? [] : Array.isArray(route.preParsing) ? route.preParsing : [route.preParsing]
  route.preParsing = [...existing, (request: FastifyRequest, reply: FastifyReply, payload: Readable) => keepBody(policy, request, reply, payload)] as RouteOptions['preParsing']
}

/**
 * For a request that carries a key, reads the body (within the route's `maxBodyBytes`, a `413`
 * problem past it) and keeps its bytes for the fingerprint, then hands Fastify the same bytes to
 * parse. Schema coercion and custom parsers run after, on Fastify's side only: the fingerprint is
 * of what the client sent. Requests without a key stream through untouched.
 */
async function keepBody(policy: ResolvedPolicy<any, any>, request: FastifyRequest, reply: FastifyReply, payload: Readable): Promise<Readable | FastifyReply> {
  if (!policy.methods.has(request.method.toUpperCase()) || request.headers[policy.header] === undefined) return payload
  let bytes: Uint8Array
  try {
    bytes = await readLimited(payload, policy.body.maxBodyBytes, request.headers['content-length'])
  } catch (error) {
    if (!(error instanceof IdempotencyRequestBodyError)) throw error
    const response = problemFromError(policy.problemTypeBase, error, 422)
    return reply.code(response.status).headers(response.headers).send(serializeBody(response))
  }
  rawBodies.set(request, bytes)
  const again = Readable.from(bytes.byteLength === 0 ? [] : [bytes], { objectMode: false })
  // Fastify checks what it parses against Content-Length by this count.
  return Object.assign(again, { receivedEncodedLength: bytes.byteLength })
}

/** The bytes {@link keepBody} kept for this request. */
export async function readFastifyBody(request: FastifyRequest): Promise<RequestBody> {
  const bytes = rawBodies.get(request)
  if (bytes === undefined) throw new IdempotencyUsageError('The request body was not kept for its fingerprint: register the idempotency plugin before the route.')
  return { bytes, contentType: request.headers['content-type'] }
}
