// Which named statements each node-postgres connection has parsed, as this library counts them:
// its own record, keyed by the client, never node-postgres's internal one.

const parsed = new WeakMap<object, Set<string>>()

/** The names `client`'s session has parsed through the library's batches. */
export function parsedStatementsOf(client: object): Set<string> {
  let names = parsed.get(client)
  if (names === undefined) {
    names = new Set()
    parsed.set(client, names)
  }
  return names
}
