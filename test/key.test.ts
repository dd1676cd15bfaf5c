import { randomUUID } from 'node:crypto'
import type { Transaction } from 'kysely'
import { describe, expect, it } from 'vitest'
import { readKeyHeader } from '../src/http/key-header.ts'
import { IdempotencyErrorCode, IdempotencyKeyInvalidError, validateKey, withIdempotency, type KeyFormat } from '../src/index.ts'

// A transaction that fails the test if any SQL reaches it: key rules apply before the database.
const noSqlAllowed = {
  isTransaction: true,
  executeQuery: () => {
    throw new Error('SQL ran before the key was validated')
  },
} as unknown as Transaction<unknown>

const invalid: Array<[string, unknown, KeyFormat?]> = [
  ['an empty key', ''],
  ['a key of 256 characters', 'k'.repeat(256)],
  ['a key of 256 astral characters', '😀'.repeat(256)],
  ['a newline', 'abc\ndef'],
  ['a NUL character', 'abc\u0000'],
  ['a DEL character', 'abc\u007f'],
  ['a C1 control character', 'abc\u0085'],
  ['a lone surrogate', 'abc\ud800'],
  ['a number', 42],
  ['null', null],
  ['a non-UUID where a UUID is required', 'not-a-uuid', 'uuid'],
  ['a v1 UUID where v4 is required', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'uuid-v4'],
]

describe('key rules', () => {
  it.each(invalid)('rejects %s with IDEMPOTENCY_KEY_INVALID (400) before any SQL runs', async (_name, key, format) => {
    const attempt = withIdempotency(noSqlAllowed, key as string, async () => 1, { keyFormat: format ?? 'any' })
    await expect(attempt).rejects.toBeInstanceOf(IdempotencyKeyInvalidError)
    await expect(attempt).rejects.toMatchObject({ code: IdempotencyErrorCode.KEY_INVALID, httpStatus: 400 })
  })

  it('accepts 255 characters, counted as PostgreSQL counts them (code points)', () => {
    expect(validateKey('k'.repeat(255)).key).toHaveLength(255)
    expect(validateKey('😀'.repeat(255)).key).toHaveLength(510)
  })

  it('accepts UUIDs in the formats that ask for them', () => {
    const v4 = randomUUID()
    expect(validateKey(v4, 'uuid-v4').key).toBe(v4)
    expect(validateKey('f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'uuid').key).toBe('f81d4fae-7dec-11d0-a765-00a0c91e6bf6')
  })

  it('applies the same rules to the scope, and requires a UUID customer id', () => {
    expect(() => validateKey({ key: 'k', scope: '' })).toThrow(IdempotencyKeyInvalidError)
    expect(() => validateKey({ key: 'k', scope: 's'.repeat(513) })).toThrow(IdempotencyKeyInvalidError)
    expect(() => validateKey({ key: 'k', scope: 'a\tb' })).toThrow(IdempotencyKeyInvalidError)
    expect(() => validateKey({ key: 'k', customerId: 'user-123' })).toThrow(/UUID/)
    expect(validateKey({ key: 'k' })).toEqual({ scope: 'default', key: 'k', request: undefined, customerId: null })
  })
})

describe('UUID keys', () => {
  it('are one key in upper and lower case (RFC 4122 compares them case-insensitively), stored in lower case', () => {
    const v4 = randomUUID()
    for (const format of ['uuid', 'uuid-v4'] as const) {
      expect(validateKey(v4.toUpperCase(), format).key).toBe(v4)
      expect(validateKey({ key: 'F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6', scope: 's' }, 'uuid').key).toBe('f81d4fae-7dec-11d0-a765-00a0c91e6bf6')
    }
  })

  it("are kept exactly under 'any': an opaque key is case-sensitive", () => {
    expect(validateKey('F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6').key).toBe('F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6')
  })
})

describe('the Idempotency-Key header grammar', () => {
  it('reads a bare key and a Structured Field string as the same key', () => {
    expect(readKeyHeader('  k-1:2/3=+_.~!  ')).toBe('k-1:2/3=+_.~!')
    expect(readKeyHeader('"k-1:2/3=+_.~!"')).toBe('k-1:2/3=+_.~!')
    expect(readKeyHeader('"with \\"quotes\\" and, commas; inside"')).toBe('with "quotes" and, commas; inside')
    expect(readKeyHeader(undefined)).toBeUndefined()
  })

  it.each([
    ['two joined header lines', 'a, b'],
    ['two joined equal lines', 'a, a'],
    ['two joined Structured Field strings', '"a", "b"'],
    ['Structured Field parameters', '"k";x=1'],
    ['a bare parameter', 'k;x=1'],
    ['a space', 'a b'],
    ['a quote inside a bare key', 'a"b'],
    ['non-ASCII (as Node decodes it, latin1)', 'caf\u00e9'],
    ['an empty value', ''],
    ['an unterminated string', '"abc'],
    ['a Structured Field token', 'abc;'],
    ['a Structured Field integer in quotes', '"a" 1'],
  ])('refuses %s with IDEMPOTENCY_KEY_INVALID', (_name, value) => {
    expect(() => readKeyHeader(value)).toThrow(IdempotencyKeyInvalidError)
  })
})
