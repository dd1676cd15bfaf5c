import { IdempotencyErrorCode, IdempotencyJsonError } from './errors.ts'

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/**
 * What a value becomes after a trip through JSON: `Date` (or anything with `toJSON`) turns into
 * what `toJSON` returns, `undefined` and function properties disappear. This is the type of
 * `outcome.value`, on the first call and on every replay alike.
 */
export type Jsonified<T> = unknown extends T
  ? unknown
  : T extends { toJSON(...args: never[]): infer R }
  ? Jsonified<R>
  : T extends string | number | boolean | null
    ? T
    : T extends undefined | ((...args: never[]) => unknown) | symbol
      ? never
      : T extends readonly (infer E)[]
        ? Jsonified<E>[]
        : T extends object
          ? { [K in keyof T as T[K] extends ((...args: never[]) => unknown) | symbol ? never : K]: Jsonified<T[K]> }
          : never

/**
 * The deepest nesting of arrays and objects stored or fingerprinted. It bounds the work: V8's
 * JSON.stringify checks every level of nesting for cycles, so its cost grows with size times depth.
 */
export const MAX_JSON_DEPTH = 1000

type JsonErrorCode = typeof IdempotencyErrorCode.REQUEST_INVALID | typeof IdempotencyErrorCode.RESULT_INVALID | typeof IdempotencyErrorCode.EVENT_INVALID

/**
 * Serializes `value` as JSON, refusing what `JSON.stringify` would silently change or drop and
 * what PostgreSQL cannot hold (NUL, lone surrogates): functions, symbols, BigInt, NaN and Infinity, cycles, Map, Set and
 * other class instances without `toJSON`, `undefined` inside arrays, strings with NUL
 * characters or lone surrogates, and values nested deeper than {@link MAX_JSON_DEPTH}.
 * `undefined` object properties are left out, as JSON does; a top-level `undefined` is `null`.
 *
 * Linear in the size of the value: the ancestors are a set, not a list searched at every level.
 */
export function toJsonText(value: unknown, code: JsonErrorCode): string {
  const stack: unknown[] = []
  const ancestors = new Set<unknown>()
  const path: string[] = []
  // JSON.stringify calls the replacer with `this` = the holder and values after toJSON.
  function check(this: unknown, key: string, current: unknown): unknown {
    // Unwind to the holder, so `stack` and `path` describe where `current` sits.
    while (stack.length > 0 && stack[stack.length - 1] !== this) {
      ancestors.delete(stack.pop())
      path.pop()
    }
    const where = () => (stack.length === 0 ? '$' : `$${path.join('')}${formatKey(this, key)}`)
    if (!isStorableString(key)) throw new IdempotencyJsonError(code, where(), 'a property name has a NUL character or a lone surrogate')
    switch (typeof current) {
      case 'string':
        if (!isStorableString(current)) throw new IdempotencyJsonError(code, where(), 'a string has a NUL character or a lone surrogate')
        return current
      case 'number':
        if (!Number.isFinite(current)) throw new IdempotencyJsonError(code, where(), `${current} has no JSON form`)
        return current
      case 'boolean':
        return current
      case 'undefined':
        if (Array.isArray(this)) throw new IdempotencyJsonError(code, where(), 'undefined inside an array')
        return current
      case 'bigint':
      case 'function':
      case 'symbol':
        throw new IdempotencyJsonError(code, where(), `a ${typeof current} has no JSON form`)
    }
    if (current === null) return current
    const proto: unknown = Object.getPrototypeOf(current)
    if (!Array.isArray(current) && proto !== Object.prototype && proto !== null) {
      const name = (current as { constructor?: { name?: string } }).constructor?.name ?? 'object'
      throw new IdempotencyJsonError(code, where(), `a ${name} without toJSON has no faithful JSON form`)
    }
    if (ancestors.has(current)) throw new IdempotencyJsonError(code, where(), 'a cycle')
    if (stack.length >= MAX_JSON_DEPTH) throw new IdempotencyJsonError(code, `${where().slice(0, 40)}...`, `nested deeper than ${MAX_JSON_DEPTH} levels`)
    path.push(stack.length === 0 ? '' : formatKey(this, key))
    stack.push(current)
    ancestors.add(current)
    return current
  }
  let text: string | undefined
  try {
    text = JSON.stringify(value === undefined ? null : value, check)
  } catch (error) {
    if (error instanceof IdempotencyJsonError) throw error
    // A getter or toJSON that throws, a revoked proxy: the value cannot be read, so not stored.
    throw new IdempotencyJsonError(code, '$', `reading it failed (${error instanceof Error ? error.message : String(error)})`)
  }
  // A top-level toJSON that returns undefined leaves nothing to store.
  if (text === undefined) throw new IdempotencyJsonError(code, '$', 'it has no JSON form')
  return text
}

function formatKey(holder: unknown, key: string): string {
  if (Array.isArray(holder)) return `[${key}]`
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`
}

function isStorableString(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed()
}
