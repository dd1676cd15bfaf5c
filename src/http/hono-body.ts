import type { Context } from 'hono'
import { IdempotencyUsageError } from '../errors.ts'
import { bodyTooLarge, declaredOver, readLimited, type RequestBody } from './request-body.ts'

const kept = new WeakMap<Request, Uint8Array>()

/**
 * Reads the body's bytes within `limit` and rebuilds the request around them, as Hono's own
 * `bodyLimit` middleware does, so whatever reads the body next (a validator, the handler's
 * `c.req.json()`) reads the same bytes again.
 */
export async function keepHonoBody(c: Context, limit: number): Promise<Uint8Array> {
  const already = kept.get(c.req.raw)
  if (already !== undefined) return already
  // Refused before the body is touched: the server can then drain or drop it.
  if (declaredOver(limit, c.req.header('content-length'))) throw bodyTooLarge(limit)
  const stream = c.req.raw.body
  if (stream === null) return new Uint8Array(0)
  const bytes = await readLimited(stream, limit, c.req.header('content-length'))
  c.req.raw = new Request(c.req.raw, { body: bytes })
  kept.set(c.req.raw, bytes)
  return bytes
}

/**
 * The body of a Hono request as the client sent it: the bytes {@link keepHonoBody} kept, or
 * read now within `limit`. A body a middleware already parsed (a `validator('json')` before the
 * handler) survives only as its parsed form, which cannot tell `9007199254740993` from
 * `9007199254740992`: that is a usage error rather than a silent guess, unless Hono cached the
 * bytes themselves (`c.req.arrayBuffer()`).
 */
export async function readHonoBody(c: Context, limit: number): Promise<RequestBody> {
  const contentType = c.req.header('content-type')
  if (!c.req.raw.bodyUsed || kept.has(c.req.raw)) return { bytes: await keepHonoBody(c, limit), contentType }
  if (c.req.bodyCache.arrayBuffer !== undefined || c.req.bodyCache.blob !== undefined) return { bytes: new Uint8Array(await c.req.arrayBuffer()), contentType }
  throw new IdempotencyUsageError(
    'A middleware read the request body before the idempotent handler, so its bytes are lost for the fingerprint: put keepRawBody() (from pg-idempotency/hono) before that middleware.',
  )
}
