import { createHash } from 'node:crypto'
import { IdempotencyErrorCode, IdempotencyRequestBodyError } from '../errors.ts'
import { canonicalJson, JsonBodyError, type IgnoredFields } from '../canonical-json.ts'
import { bodyTooLarge, type RequestBody } from './request-body.ts'

/** The default of the policy's `maxBodyDepth`. */
export const DEFAULT_MAX_BODY_DEPTH = 100

/** What stands for the body in the request's fingerprint: small, whatever the body's size. */
export type BodyFingerprint =
  | null
  | { json: string; type: string }
  | { bytes: string; type: string | null }

export interface BodyRules {
  maxBodyBytes: number
  maxBodyDepth: number
  ignoredFields: IgnoredFields
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Fingerprints a body by what the client sent, not by what a parser made of it.
 *
 * - No body (zero bytes): `null`, whatever the content type.
 * - A JSON media type (`application/json`, `*\/*+json`): SHA-256 of its canonical text (see
 *   {@link canonicalJson}) and the media type without parameters (JSON is UTF-8 whatever a
 *   `charset` says). Key order and whitespace do not matter; every value does, numbers beyond
 *   2^53 included. Not UTF-8, not JSON, or too deep: `400`.
 * - Anything else (forms, text, octet-stream, `application/json-seq`, no content type): SHA-256 of
 *   the bytes, with the whole `Content-Type` header, parameters included (a charset changes what
 *   the bytes mean).
 */
export function fingerprintBody(body: RequestBody, rules: BodyRules): BodyFingerprint {
  if (body.bytes.byteLength > rules.maxBodyBytes) throw bodyTooLarge(rules.maxBodyBytes)
  if (body.bytes.byteLength === 0) return null
  const type = body.contentType?.trim()
  const essence = type?.split(';', 1)[0]!.trim().toLowerCase()
  if (essence === undefined || !isJsonMediaType(essence)) return { bytes: sha256(body.bytes), type: type ?? null }
  let text: string
  try {
    text = STRICT_UTF8.decode(body.bytes)
  } catch {
    throw new IdempotencyRequestBodyError(IdempotencyErrorCode.REQUEST_INVALID, 'The request body is not valid UTF-8, as JSON must be.')
  }
  try {
    return { json: sha256(canonicalJson(text, rules.maxBodyDepth, rules.ignoredFields)), type: essence }
  } catch (error) {
    if (error instanceof JsonBodyError) throw new IdempotencyRequestBodyError(IdempotencyErrorCode.REQUEST_INVALID, error.message)
    throw error
  }
}

/** `application/json` and the structured `+json` suffix (RFC 6839); not `application/json-seq`. */
export function isJsonMediaType(essence: string): boolean {
  return essence === 'application/json' || /^[a-z0-9!#$&^_.-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(essence)
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('base64')
}
