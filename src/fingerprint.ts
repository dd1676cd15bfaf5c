import { createHash } from 'node:crypto'
import { canonicalJson, ignoredFieldsOf } from './canonical-json.ts'
import { IdempotencyErrorCode } from './errors.ts'
import { MAX_JSON_DEPTH, toJsonText } from './json.ts'

const NOTHING_IGNORED = ignoredFieldsOf([])

/**
 * SHA-256 of the request's RFC 8785 (JCS) canonical JSON: the same request with its object keys
 * in another order, or its numbers written another way, has the same fingerprint.
 */
export function fingerprintRequest(request: unknown): Buffer {
  // The strict pass turns anything that is not plain JSON into a typed error naming its path;
  // a canonicalizer would silently drop a function or turn it into null. Canonicalizing the text
  // it produced, not the live value, also means a getter is read once and cannot change in
  // between. JSON.stringify writes numbers and strings as RFC 8785 does, so sorting the members
  // of that text is all that is left, in one linear pass.
  const text = toJsonText(request, IdempotencyErrorCode.REQUEST_INVALID)
  return createHash('sha256').update(canonicalJson(text, MAX_JSON_DEPTH, NOTHING_IGNORED), 'utf8').digest()
}
