import type { IncomingMessage } from 'node:http'
import { IdempotencyUsageError } from '../errors.ts'
import { readLimited, type RequestBody } from './request-body.ts'

const rawBodies = new WeakMap<IncomingMessage, Uint8Array>()

/**
 * The `verify` option of Express's body parsers: keeps the bytes the parser read, so the
 * fingerprint is of what the client sent (a JSON parser turns `9007199254740993` into
 * `9007199254740992`). `app.use(express.json({ verify: keepRawBody }))`; the same for
 * `express.urlencoded()` and `express.text()`.
 */
export function keepRawBody(req: IncomingMessage, _res: unknown, bytes: Buffer): void {
  rawBodies.set(req, bytes)
}

/**
 * The body of an Express request as the client sent it: the bytes a parser kept with
 * {@link keepRawBody}, or those `express.raw()` left in `req.body`, or, when no parser read the
 * body, the stream read here (within `limit`) and left in `req.body` as a Buffer (when not
 * empty), as `express.raw()` would. A body a parser consumed without keeping its bytes cannot be
 * fingerprinted faithfully, and is a usage error rather than a silent guess.
 */
export async function readExpressBody(req: IncomingMessage & { body?: unknown }, limit: number): Promise<RequestBody> {
  const contentType = req.headers['content-type']
  const kept = rawBodies.get(req)
  if (kept !== undefined) return { bytes: kept, contentType }
  if (!req.readableDidRead && !req.readableEnded) {
    const bytes = await readLimited(req, limit, req.headers['content-length'])
    if (req.body === undefined && bytes.byteLength > 0) req.body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return { bytes, contentType }
  }
  if (Buffer.isBuffer(req.body)) return { bytes: req.body, contentType }
  throw new IdempotencyUsageError(
    'A body parser read the request body without keeping its bytes, so it cannot be fingerprinted: pass `verify: keepRawBody` (from pg-idempotency/express) to express.json(), express.urlencoded() and express.text().',
  )
}
