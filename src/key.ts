import { validate as isUuid, version as uuidVersion } from 'uuid'
import { IdempotencyKeyInvalidError, IdempotencyUsageError } from './errors.ts'

/** The longest key accepted, in characters (Stripe and the IETF draft's common practice). */
export const MAX_KEY_LENGTH = 255
/** The longest scope accepted, in characters. */
export const MAX_SCOPE_LENGTH = 512
/** The scope of a key given as a bare string. */
export const DEFAULT_SCOPE = 'default'

/** Which keys are accepted: any string within the rules, an RFC 4122 UUID, or only a version 4 UUID. */
export type KeyFormat = 'any' | 'uuid' | 'uuid-v4'

/**
 * Names one idempotent operation. The same `key` in two scopes is two keys: build the scope from
 * who the caller is (tenant, API client) so one client can never read another's stored result.
 */
export interface IdempotencyKey {
  /** The client's key, 1 to 255 characters with no control characters. */
  key: string
  /** Defaults to `'default'`. 1 to 512 characters with no control characters. */
  scope?: string
  /** Any JSON value; a repeat with a different request is a mismatch. Defaults to `null`. */
  request?: unknown
  /** A UUID stored with the key, so the key is deleted when that customer is. */
  customerId?: string
}

/** A key object, or a bare key string in the default scope with no request. */
export type IdempotencyKeyInput = string | IdempotencyKey

/** A key that passed every rule. */
export interface ValidKey {
  scope: string
  key: string
  request: unknown
  customerId: string | null
}

/** Applies the key rules; throws {@link IdempotencyKeyInvalidError} before any SQL runs. */
export function validateKey(input: IdempotencyKeyInput, format: KeyFormat = 'any'): ValidKey {
  const spec: IdempotencyKey = typeof input === 'string' ? { key: input } : (input ?? ({} as IdempotencyKey))
  if (typeof spec !== 'object') throw new IdempotencyKeyInvalidError('The idempotency key must be a string or an object with a key.')
  const key = checkOpaqueText(`idempotency key`, spec.key, MAX_KEY_LENGTH, invalidKey)
  const scope = checkOpaqueText(`idempotency scope`, spec.scope ?? DEFAULT_SCOPE, MAX_SCOPE_LENGTH, invalidKey)
  const normalized = normalizeFormat(key, format)
  const customerId = spec.customerId ?? null
  if (customerId !== null && (typeof customerId !== 'string' || !isUuid(customerId))) {
    throw new IdempotencyKeyInvalidError('The customerId stored with an idempotency key must be a UUID.')
  }
  return { scope, key: normalized, request: spec.request, customerId }
}

// C0 and C1 control characters, DEL included.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/

const invalidKey = (message: string) => new IdempotencyKeyInvalidError(message)

/**
 * The rules every opaque client-given text follows (keys, scopes, customer identifiers): a
 * non-empty string of at most `maxLength` characters (code points, as PostgreSQL counts them)
 * with no control characters and no lone surrogates.
 */
export function checkOpaqueText(what: string, value: unknown, maxLength: number, fail: (message: string) => Error): string {
  if (typeof value !== 'string') throw fail(`The ${what} must be a string.`)
  if (value.length === 0) throw fail(`The ${what} is empty.`)
  // A UTF-16 length within the limit is always within it in code points.
  if (value.length > maxLength && countCodePoints(value) > maxLength) throw fail(`The ${what} is longer than ${maxLength} characters.`)
  if (CONTROL_CHARACTER.test(value)) throw fail(`The ${what} contains a control character.`)
  if (!value.isWellFormed()) throw fail(`The ${what} contains a lone surrogate.`)
  return value
}

/**
 * Checks the key against its format and returns the form it is stored under. RFC 4122 has UUIDs
 * compared case-insensitively, so a UUID key is stored in lower case: the same UUID in upper and
 * lower case is one key. An `'any'` key is opaque and kept exactly.
 */
function normalizeFormat(key: string, format: KeyFormat): string {
  switch (format) {
    case 'any':
      return key
    case 'uuid':
      if (!isUuid(key)) throw new IdempotencyKeyInvalidError('The idempotency key must be a UUID (RFC 4122).')
      return key.toLowerCase()
    case 'uuid-v4':
      if (!isUuid(key) || uuidVersion(key) !== 4) throw new IdempotencyKeyInvalidError('The idempotency key must be a version 4 UUID.')
      return key.toLowerCase()
    default:
      throw new IdempotencyUsageError(`keyFormat must be 'any', 'uuid' or 'uuid-v4'; got ${String(format)}.`)
  }
}

function countCodePoints(text: string): number {
  let count = 0
  for (const _ of text) count++
  return count
}
