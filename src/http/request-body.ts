import { IdempotencyErrorCode, IdempotencyRequestBodyError } from '../errors.ts'

/** The bytes of a request body as the client sent them, with their media type. */
export interface RequestBody {
  bytes: Uint8Array
  /** The `Content-Type` header, or undefined. */
  contentType: string | undefined
}

/** The default of the policy's `maxBodyBytes`: 1 MiB, Fastify's default body limit. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024

export function bodyTooLarge(limit: number): IdempotencyRequestBodyError {
  return new IdempotencyRequestBodyError(IdempotencyErrorCode.REQUEST_TOO_LARGE, `The request body is larger than ${limit} bytes.`)
}

/** Whether a `Content-Length` header already says the body is over `limit` bytes. */
export function declaredOver(limit: number, declaredLength: string | undefined): boolean {
  return declaredLength !== undefined && /^\d+$/.test(declaredLength.trim()) && Number(declaredLength) > limit
}

/**
 * Reads a body stream (a Node request, a web `ReadableStream`) into one buffer, refusing with a
 * `413` error as soon as it passes `limit` bytes: a declared `Content-Length` over the limit is
 * refused before anything is read, and a body sent in chunks is refused at the chunk that passes
 * it, so no more than `limit` bytes are ever held.
 */
export async function readLimited(source: AsyncIterable<Uint8Array>, limit: number, declaredLength: string | undefined): Promise<Uint8Array> {
  if (declaredOver(limit, declaredLength)) throw bodyTooLarge(limit)
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of source) {
    size += chunk.byteLength
    if (size > limit) throw bodyTooLarge(limit)
    chunks.push(chunk)
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
}
