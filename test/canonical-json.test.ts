import { describe, expect, it } from 'vitest'
import { fingerprintBody } from '../src/http/body-fingerprint.ts'
import { canonicalJson, ignoredFieldsOf, JsonBodyError } from '../src/canonical-json.ts'
import { IdempotencyErrorCode, IdempotencyJsonError } from '../src/index.ts'
import { fingerprintRequest } from '../src/fingerprint.ts'
import { MAX_JSON_DEPTH, toJsonText } from '../src/json.ts'

const none = ignoredFieldsOf([])
const canonical = (text: string, maxDepth = 100) => canonicalJson(text, maxDepth, none)
const rules = { maxBodyBytes: 1 << 20, maxBodyDepth: 100, ignoredFields: none }
const json = (text: string | Uint8Array, contentType = 'application/json') =>
  fingerprintBody({ bytes: typeof text === 'string' ? Buffer.from(text) : text, contentType }, rules)

describe('canonical JSON of a request body', () => {
  it('sorts members by UTF-16 code units and drops whitespace, as RFC 8785 does', () => {
    expect(canonical(' {"b": [1, {"d":true,"c":null}], "a":"x", "\\u00e9":1, "\\ud83d\\ude00":2, "\\uff61":3 } ')).toBe(
      '{"a":"x","b":[1,{"c":null,"d":true}],"é":1,"😀":2,"｡":3}',
    )
  })

  it('writes strings in one form whatever escapes the client used', () => {
    expect(canonical('"\\u0041\\/\\n\\u001f"')).toBe(JSON.stringify('A/\n\u001f'))
    expect(canonical('"A/\\n\\u001F"')).toBe(canonical('"\\u0041\\/\\n\\u001f"'))
  })

  it('keeps number text exactly: no rounding to doubles', () => {
    expect(canonical('[9007199254740993, 9007199254740992, 1.0, 1, 1e2, 1E2, -0, 0.1000000000000000055511151231257827]')).toBe(
      '[9007199254740993,9007199254740992,1.0,1,1e2,1E2,-0,0.1000000000000000055511151231257827]',
    )
  })

  it('keeps every member of a repeated name, in order', () => {
    expect(canonical('{"b":1,"a":2,"a":1}')).toBe('{"a":2,"a":1,"b":1}')
    expect(canonical('{"a":1,"a":2}')).not.toBe(canonical('{"a":2}'))
  })

  it('leaves ignored fields out, nested ones only inside objects', () => {
    const ignored = ignoredFieldsOf([['sentAt'], ['meta', 'trace'], ['meta', 'trace', 'deeper']])
    expect(canonicalJson('{"sentAt":1,"meta":{"trace":{"x":1},"id":2},"list":[{"sentAt":3}]}', 100, ignored)).toBe('{"list":[{"sentAt":3}],"meta":{"id":2}}')
    expect(canonicalJson('[{"sentAt":1}]', 100, ignored)).toBe('[{"sentAt":1}]')
  })

  it.each([
    ['truncated', '{"a":'],
    ['trailing text', '{} {}'],
    ['a leading zero', '01'],
    ['a bare minus', '-'],
    ['a trailing comma', '[1,]'],
    ['single quotes', "{'a':1}"],
    ['a raw control character', '"a\u0001b"'],
    ['a bad escape', '"\\x41"'],
    ['a short \\u escape', '"\\u12"'],
    ['a NUL', '"a\\u0000b"'],
    ['a lone surrogate', '"\\ud800"'],
    ['NaN', 'NaN'],
    ['nothing', ''],
    ['a comment', '{"a":1 /* */}'],
  ])('refuses %s', (_name, text) => {
    expect(() => canonical(text)).toThrow(JsonBodyError)
  })

  it('refuses nesting deeper than the limit, counting objects and arrays alike', () => {
    expect(canonical('[{"a":[]}]', 3)).toBe('[{"a":[]}]')
    expect(() => canonical('[{"a":[[]]}]', 3)).toThrow(/deeper than 3/)
    // Deeper than the call stack would allow: refused at the limit, not by a stack overflow.
    expect(() => canonical('['.repeat(100_000) + ']'.repeat(100_000))).toThrow(/deeper than 100/)
  })
})

describe('the fingerprint of a request body', () => {
  it('is of the canonical text for JSON media types, of the bytes with the content type for others', () => {
    expect(json('{"a":1,"b":2}')).toEqual(json('{ "b":2,"a":1 }', 'Application/JSON; charset=utf-8'))
    expect(json('{"a":1}', 'application/merge-patch+json')).not.toEqual(json('{"a":1}'))
    expect(json('{"a":1}', 'application/json-seq')).toMatchObject({ type: 'application/json-seq' })
    expect(json('{"a":1}', 'application/json-seq')).not.toEqual(json('{ "a":1}', 'application/json-seq'))
    expect(json('')).toBeNull()
  })

  it('refuses a JSON body that is not UTF-8 (400) and a body past the limit (413)', () => {
    for (const bytes of [[0x22, 0xff, 0x22], [0x22, 0xc0, 0xaf, 0x22], [0x22, 0xed, 0xa0, 0x80, 0x22]]) {
      expect(() => json(new Uint8Array(bytes))).toThrow(expect.objectContaining({ code: IdempotencyErrorCode.REQUEST_INVALID, httpStatus: 400 }))
    }
    expect(() => fingerprintBody({ bytes: new Uint8Array(11), contentType: undefined }, { ...rules, maxBodyBytes: 10 })).toThrow(
      expect.objectContaining({ code: IdempotencyErrorCode.REQUEST_TOO_LARGE, httpStatus: 413 }),
    )
  })
})

describe('the fingerprint of a withIdempotency request', () => {
  it('is unchanged from the RFC 8785 canonicalize package it replaced, so stored keys still match', () => {
    // Computed with canonicalize 5.1.0 before the change (checked identical on 200,000 random values).
    const request = { method: 'POST', target: '/a?b=1', body: { z: 1, a: [1.5, 'é😀\n"', null, true, -0, 1e-7], é: { y: 1e21 }, '😀': 2, 'ｱ': 3 } }
    expect(fingerprintRequest(request).toString('hex')).toBe('e3a6064e2aabd019176777bdc8d19fb8e4cca59ac8be638e1286afad7b323d9e')
  })

  it('is the same for the same object with its keys in another order', () => {
    expect(fingerprintRequest({ a: 1, b: { c: 2, d: 3 } })).toEqual(fingerprintRequest({ b: { d: 3, c: 2 }, a: 1 }))
  })
})

describe('toJsonText depth', () => {
  const nest = (depth: number) => {
    let value: unknown = []
    for (let i = 1; i < depth; i++) value = [value]
    return value
  }

  it(`stores values nested ${MAX_JSON_DEPTH} deep and refuses deeper ones with a typed error and a short path`, () => {
    expect(toJsonText(nest(MAX_JSON_DEPTH), IdempotencyErrorCode.RESULT_INVALID)).toHaveLength(2 * MAX_JSON_DEPTH)
    let error: unknown
    try {
      toJsonText(nest(MAX_JSON_DEPTH + 1), IdempotencyErrorCode.RESULT_INVALID)
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(IdempotencyJsonError)
    expect((error as IdempotencyJsonError).message).toMatch(/deeper than 1000/)
    expect((error as IdempotencyJsonError).path.length).toBeLessThan(50)
  })

  it('still finds a cycle deep down, and lets one object appear twice side by side', () => {
    const shared = { x: 1 }
    expect(toJsonText({ a: shared, b: [shared, shared] }, IdempotencyErrorCode.RESULT_INVALID)).toBe('{"a":{"x":1},"b":[{"x":1},{"x":1}]}')
    const root: { next?: unknown } = {}
    let tail: { next?: unknown } = root
    for (let i = 0; i < 500; i++) tail = (tail.next = {}) as { next?: unknown }
    tail.next = root
    expect(() => toJsonText(root, IdempotencyErrorCode.RESULT_INVALID)).toThrow(/a cycle/)
  })
})
