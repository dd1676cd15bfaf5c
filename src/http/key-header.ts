import { parseItem } from 'structured-headers'
import { IdempotencyKeyInvalidError } from '../errors.ts'

// A bare key: visible ASCII except the characters that give a header value structure elsewhere:
// `"` (a Structured Field string), `,` (how a proxy or Node joins repeated header lines) and `;`
// (Structured Field parameters). So two `Idempotency-Key` lines can never pass as one key.
const BARE_KEY = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x7e]+$/

/**
 * Reads an `Idempotency-Key` value written either as the IETF draft has it, a Structured Field
 * string (`"8e03978e-..."`, RFC 8941), or as the bare token most APIs use (`8e03978e-...`).
 * Returns undefined when the header is absent; the key rules (length, format) are applied later.
 *
 * Refused with `IDEMPOTENCY_KEY_INVALID`: a value that is neither (spaces, non-ASCII, a comma or a
 * semicolon in a bare key), a Structured Field item with parameters (`"k";x=1`: refused rather
 * than dropped, so `"k";x=1` and `"k";x=2` cannot pass as one key), and repeated header lines
 * (`a, b` after joining: a list, not a key).
 */
export function readKeyHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (!trimmed.startsWith('"')) {
    if (BARE_KEY.test(trimmed)) return trimmed
    throw new IdempotencyKeyInvalidError(
      'The idempotency key header must hold one key: a Structured Field string, or visible ASCII characters other than `"`, `,` and `;` (no spaces, one header line).',
    )
  }
  let item: ReturnType<typeof parseItem>
  try {
    item = parseItem(trimmed)
  } catch {
    throw new IdempotencyKeyInvalidError('The idempotency key header is not one valid Structured Field string (one header line, no list).')
  }
  if (typeof item[0] !== 'string') throw new IdempotencyKeyInvalidError('The idempotency key header must hold a string.')
  if (item[1].size > 0) throw new IdempotencyKeyInvalidError('The idempotency key header must not carry Structured Field parameters.')
  return item[0]
}
