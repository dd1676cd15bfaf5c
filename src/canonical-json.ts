/**
 * Body fields left out of the fingerprint, as a tree of property names: `ignoreFields:
 * ['sentAt', 'metadata.trace']` is `{ sentAt: drop, metadata: { trace: drop } }`.
 */
export type IgnoredFields = ReadonlyMap<string, IgnoredFields | 'drop'>

/** Builds the tree of {@link IgnoredFields} from dotted paths split into names. */
export function ignoredFieldsOf(paths: readonly (readonly string[])[]): IgnoredFields {
  const root = new Map<string, Map<string, unknown> | 'drop'>()
  for (const path of paths) {
    let node = root
    for (const [index, name] of path.entries()) {
      const existing = node.get(name)
      // Under a dropped field: the whole path is already ignored (and must not go on from `node`).
      if (existing === 'drop') break
      if (index === path.length - 1) node.set(name, 'drop')
      else {
        const child = existing ?? new Map()
        node.set(name, child)
        node = child as typeof root
      }
    }
  }
  return root as IgnoredFields
}

/** Why a body's text is not JSON the fingerprint can take; the adapter answers 400. */
export class JsonBodyError extends Error {}

// The run of a string's characters that need no decoding: no quote, backslash or control character.
const PLAIN_CHARACTERS = /[^"\\\u0000-\u001f]*/y
const WHITESPACE = /[ \t\n\r]*/y
const NEEDS_DECODING = /[\\\u0000-\u001f]/
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }

/**
 * The canonical text of a JSON document, for its fingerprint: object members sorted by name (UTF-16
 * code units, as RFC 8785 sorts them), no whitespace, strings in RFC 8785's escaping, so key order,
 * whitespace and escapes do not change it. Unlike RFC 8785, numbers keep the text the client sent
 * (`9007199254740993` is not rounded to a double; `1.0` and `1` differ): two requests that differ in
 * any value never share a fingerprint, whatever parser the application uses. Members with the same
 * name are all kept, in their order, so `{"a":1,"a":2}` is not `{"a":2}`.
 *
 * One pass, linear in the text; nesting deeper than `maxDepth`, text that is not JSON, strings
 * with a NUL character or a lone surrogate throw {@link JsonBodyError}.
 */
export function canonicalJson(text: string, maxDepth: number, ignored: IgnoredFields): string {
  const parser = new Parser(text, maxDepth)
  const canonical = parser.value(0, ignored)
  parser.end()
  return canonical
}

class Parser {
  private at = 0
  private readonly text: string
  private readonly maxDepth: number

  constructor(text: string, maxDepth: number) {
    this.text = text
    this.maxDepth = maxDepth
  }

  value(depth: number, ignored: IgnoredFields | undefined): string {
    this.skipWhitespace()
    switch (this.text.charCodeAt(this.at)) {
      case 0x7b: // {
        return this.object(depth + 1, ignored)
      case 0x5b: // [
        return this.array(depth + 1)
      case 0x22: // "
        return this.string()[1]
      case 0x74: // t
        return this.literal('true')
      case 0x66: // f
        return this.literal('false')
      case 0x6e: // n
        return this.literal('null')
      default:
        return this.number()
    }
  }

  end(): void {
    this.skipWhitespace()
    if (this.at !== this.text.length) this.fail('unexpected text after the JSON value')
  }

  private object(depth: number, ignored: IgnoredFields | undefined): string {
    this.enter(depth)
    const members: [name: string, canonical: string][] = []
    this.skipWhitespace()
    if (this.text.charCodeAt(this.at) === 0x7d) {
      this.at++
      return '{}'
    }
    for (;;) {
      this.skipWhitespace()
      if (this.text.charCodeAt(this.at) !== 0x22) this.fail('expected a property name')
      const [name, canonicalName] = this.string()
      this.skipWhitespace()
      this.expect(0x3a, "expected ':'")
      const rule = ignored?.get(name)
      // An ignored member is still read: it must be JSON, and within the depth.
      const value = this.value(depth, rule === 'drop' ? undefined : rule)
      if (rule !== 'drop') members.push([name, canonicalName + ':' + value])
      this.skipWhitespace()
      const next = this.text.charCodeAt(this.at++)
      if (next === 0x7d) break
      if (next !== 0x2c) this.fail("expected ',' or '}'", this.at - 1)
    }
    // Array.prototype.sort is stable, so members of one name keep their order.
    members.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    let canonical = '{'
    for (let i = 0; i < members.length; i++) canonical += (i === 0 ? '' : ',') + members[i]![1]
    return canonical + '}'
  }

  private array(depth: number): string {
    this.enter(depth)
    this.skipWhitespace()
    if (this.text.charCodeAt(this.at) === 0x5d) {
      this.at++
      return '[]'
    }
    let canonical = '['
    for (let first = true; ; first = false) {
      canonical += (first ? '' : ',') + this.value(depth, undefined)
      this.skipWhitespace()
      const next = this.text.charCodeAt(this.at++)
      if (next === 0x5d) break
      if (next !== 0x2c) this.fail("expected ',' or ']'", this.at - 1)
    }
    // Concatenation, not join: V8 links the parts and copies them once, when the text is hashed;
    // a join at every level would copy a deep body once per level.
    return canonical + ']'
  }

  private enter(depth: number): void {
    if (depth > this.maxDepth) this.fail(`nested deeper than ${this.maxDepth} levels`)
    this.at++
  }

  /** Reads a string; returns its value and its canonical text. */
  private string(): [value: string, canonical: string] {
    const start = this.at
    const end = this.text.indexOf('"', start + 1)
    if (end < 0) this.fail('unterminated string')
    // The common case: no escapes and no control characters, so the text as sent is canonical.
    const plain = this.text.slice(start + 1, end)
    if (!NEEDS_DECODING.test(plain)) {
      if (!plain.isWellFormed()) this.fail('a lone surrogate in a string', start)
      this.at = end + 1
      return [plain, this.text.slice(start, end + 1)]
    }
    this.at++ // the opening quote
    let value = ''
    for (;;) {
      PLAIN_CHARACTERS.lastIndex = this.at
      PLAIN_CHARACTERS.test(this.text)
      value += this.text.slice(this.at, PLAIN_CHARACTERS.lastIndex)
      this.at = PLAIN_CHARACTERS.lastIndex
      const c = this.text[this.at++]
      if (c === '"') break
      if (c !== '\\') this.fail(c === undefined ? 'unterminated string' : 'a control character in a string', this.at - 1)
      const escape = this.text[this.at++]!
      if (escape === 'u') {
        const hex = this.text.slice(this.at, this.at + 4)
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('a bad \\u escape', this.at - 2)
        value += String.fromCharCode(parseInt(hex, 16))
        this.at += 4
      } else if (escape in ESCAPES) value += ESCAPES[escape]
      else this.fail('a bad escape', this.at - 2)
    }
    // What the rest of the library refuses in any stored or fingerprinted text (PostgreSQL cannot
    // hold a NUL, and a lone surrogate has no UTF-8 form).
    if (value.includes('\u0000')) this.fail('a NUL character in a string', start)
    if (!value.isWellFormed()) this.fail('a lone surrogate in a string', start)
    return [value, JSON.stringify(value)]
  }

  /** Reads a number (RFC 8259 grammar) and returns its text as sent. */
  private number(): string {
    const text = this.text
    const start = this.at
    let at = start
    if (text.charCodeAt(at) === 0x2d) at++ // -
    if (text.charCodeAt(at) === 0x30) at++ // a lone leading 0
    else if (isDigit(text.charCodeAt(at))) while (isDigit(text.charCodeAt(at))) at++
    else this.fail(at >= text.length ? 'unexpected end' : 'unexpected character', at)
    if (text.charCodeAt(at) === 0x2e) {
      at++
      if (!isDigit(text.charCodeAt(at))) this.fail('a digit expected after the decimal point', at)
      while (isDigit(text.charCodeAt(at))) at++
    }
    const e = text.charCodeAt(at)
    if (e === 0x65 || e === 0x45) {
      at++
      const sign = text.charCodeAt(at)
      if (sign === 0x2b || sign === 0x2d) at++
      if (!isDigit(text.charCodeAt(at))) this.fail('a digit expected in the exponent', at)
      while (isDigit(text.charCodeAt(at))) at++
    }
    this.at = at
    return text.slice(start, at)
  }

  private literal(word: string): string {
    if (!this.text.startsWith(word, this.at)) this.fail('unexpected character')
    this.at += word.length
    return word
  }

  private expect(code: number, message: string): void {
    if (this.text.charCodeAt(this.at) !== code) this.fail(message)
    this.at++
  }

  private skipWhitespace(): void {
    const c = this.text.charCodeAt(this.at)
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return
    WHITESPACE.lastIndex = this.at
    WHITESPACE.test(this.text)
    this.at = WHITESPACE.lastIndex
  }

  private fail(problem: string, at = this.at): never {
    throw new JsonBodyError(`The request body is not valid JSON: ${problem} at character ${at}.`)
  }
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39
}
