import { createHash } from 'node:crypto'
import canonicalize from 'canonicalize'
import { IdempotencyErrorCode } from './errors.ts'
import { toJsonText } from './json.ts'

/**
 * SHA-256 of the request's RFC 8785 (JCS) canonical JSON: the same request with its object keys
 * in another order, or its numbers written another way, has the same fingerprint.
 */
export function fingerprintRequest(request: unknown): Buffer {
  // The strict pass turns anything that is not plain JSON into a typed error naming its path;
  // canonicalize would silently drop a function or turn it into null. Canonicalizing the text it
  // produced, not the live value, also means a getter is read once and cannot change in between.
  const text = toJsonText(request, IdempotencyErrorCode.REQUEST_INVALID)
  const canonical = canonicalize(JSON.parse(text)) as string
  return createHash('sha256').update(canonical, 'utf8').digest()
}
