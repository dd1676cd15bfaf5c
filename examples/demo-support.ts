// What the demos share: a network that loses a response, and the table they print.

/** A network that loses the first response after the server has committed it. */
export function losesFirstResponse(): typeof fetch {
  let lost = false
  return async (input, init) => {
    const response = await fetch(input, init)
    if (lost) return response
    lost = true
    await response.arrayBuffer()
    throw new TypeError('network lost the response')
  }
}

/** Prints `rows` as a table of `columns`, one line a row. */
export function printTable<Row extends Record<string, unknown>>(rows: Row[], columns: Array<keyof Row & string>): void {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)))
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()
  console.log(line(columns))
  console.log(line(widths.map((w) => '-'.repeat(w))))
  for (const row of rows) console.log(line(columns.map((c) => String(row[c]))))
}
