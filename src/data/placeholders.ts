// The library's statements number their parameters `$1`…`$n`, as PostgreSQL does. A layer whose
// raw API takes another form (Knex's `?`, Drizzle's `sql` pieces) splits the text here.

/** A statement's text cut at its placeholders: `parts[0] $… parts[1] $… parts[n]`. */
export interface SplitText {
  /** The SQL around the placeholders, one more than there are placeholders. */
  parts: string[]
  /** For each placeholder in order, the 0-based index of the value it stands for. */
  positions: number[]
}

/**
 * Cuts `text` at each `$n` placeholder, leaving alone what only looks like one: inside a quoted
 * string, a quoted identifier, a dollar-quoted body (`do $$ … $$`), a comment or an identifier
 * that holds a `$` (`a$1`).
 */
export function splitAtPlaceholders(text: string): SplitText {
  const parts: string[] = []
  const positions: number[] = []
  let start = 0
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === "'" || c === '"') {
      i = text.indexOf(c, i + 1)
      // A doubled quote ('it''s') is two strings back to back to this scan: the same result.
      i = i === -1 ? text.length : i + 1
    } else if (c === '-' && text[i + 1] === '-') {
      i = text.indexOf('\n', i)
      if (i === -1) i = text.length
    } else if (c === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i + 2)
      i = i === -1 ? text.length : i + 2
    } else if (c === '$' && !/[A-Za-z0-9_$]/.test(text[i - 1] ?? ' ')) {
      const number = /^\$(\d+)/.exec(text.slice(i))
      const tag = number ? undefined : /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i))
      if (number) {
        parts.push(text.slice(start, i))
        positions.push(Number(number[1]) - 1)
        i += number[0].length
        start = i
      } else if (tag) {
        const end = text.indexOf(tag[0], i + tag[0].length)
        i = end === -1 ? text.length : end + tag[0].length
      } else {
        i++
      }
    } else {
      i++
    }
  }
  parts.push(text.slice(start))
  return { parts, positions }
}
