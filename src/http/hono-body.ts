import type { Context } from 'hono'
import { bodyTooLarge, readLimited, type RequestBody } from './request-body.ts'

/**
 * The body of a Hono request as the client sent it, read within `limit` bytes. The request is
 * then rebuilt around the bytes read, as Hono's own `bodyLimit` middleware does, so the handler's
 * `c.req.json()` or `c.req.text()` reads them again. A body a middleware already read is taken
 * from Hono's body cache (`c.req.arrayBuffer()`).
 */
export async function readHonoBody(c: Context, limit: number): Promise<RequestBody> {
  const contentType = c.req.header('content-type')
  const declaredLength = c.req.header('content-length')
  // Refused before the body is touched: the server can then drain or drop it.
  if (declaredLength !== undefined && /^\d+$/.test(declaredLength.trim()) && Number(declaredLength) > limit) throw bodyTooLarge(limit)
  const stream = c.req.raw.body
  if (stream === null) return { bytes: new Uint8Array(0), contentType }
  if (c.req.raw.bodyUsed) return { bytes: new Uint8Array(await c.req.arrayBuffer()), contentType }
  const bytes = await readLimited(stream, limit, declaredLength)
  c.req.raw = new Request(c.req.raw, { body: bytes })
  return { bytes, contentType }
}
