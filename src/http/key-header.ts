import { parseItem } from 'structured-headers'
import { IdempotencyKeyInvalidError } from '../errors.ts'

/**
 * Reads an `Idempotency-Key` value written either as the IETF draft has it, a Structured Field
 * string (`"8e03978e-..."`, RFC 8941), or as the bare token most APIs use (`8e03978e-...`).
 * Returns undefined when the header is absent; the key rules are applied later.
 */
export function readKeyHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (!trimmed.startsWith('"')) return trimmed
  let item: ReturnType<typeof parseItem>
  try {
    item = parseItem(trimmed)
  } catch {
    throw new IdempotencyKeyInvalidError('The idempotency key header is not a valid Structured Field string.')
  }
  if (typeof item[0] !== 'string') throw new IdempotencyKeyInvalidError('The idempotency key header must hold a string.')
  return item[0]
}
