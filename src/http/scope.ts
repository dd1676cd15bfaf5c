import { createHash } from 'node:crypto'

/** What an HTTP key is unique within: who asks, on which route (unless `'client'`), for which customer. */
export interface HttpScopeParts {
  /** `'route'`: the client, the method and the route pattern. `'client'`: the client alone. */
  scope: 'route' | 'client'
  /** The client's id from the `client` resolver; undefined for anonymous callers. */
  client: string | undefined
  method: string
  /** The route pattern (`/accounts/:id/deposits`). */
  route: string
  /** The server's id of the customer the request is made for, if any. */
  customerId: string | undefined
}

// Names what the digest is of, so it never equals a SHA-256 of the same text made for another
// purpose (a token table that stores SHA-256 of API keys, say).
const CLIENT_DIGEST_DOMAIN = 'pg-idempotency/http-client/v1\0'

/**
 * The client as the key table stores it: SHA-256 of the client id under a fixed domain prefix,
 * base64url. A database reader learns which keys share a client, not who the client is, and
 * cannot recover a credential a resolver returned by mistake. Plain rather than keyed: the scope
 * must stay the same in every process and across deploys (or stored keys stop replaying), and a
 * secret would have to be shared and could never be rotated without that.
 */
export function clientDigest(client: string): string {
  // JSON text, not the string's UTF-8: UTF-8 would turn every lone surrogate into U+FFFD, making
  // 'a\ud800' and 'a\ufffd' one client. JSON escapes a lone surrogate, so each id has its own text.
  return createHash('sha256').update(CLIENT_DIGEST_DOMAIN + JSON.stringify(client), 'utf8').digest('base64url')
}

/**
 * The scope of a request's key: a JSON array of fixed arity, `["http", client, method, route,
 * customer]`, with `null` for a part that does not apply. JSON encodes every string unambiguously
 * (quotes and backslashes are escaped), so two different tuples never give the same scope,
 * whatever characters a client id or a route holds; the client part is a digest, never the id.
 */
export function httpScope(parts: HttpScopeParts): string {
  const byRoute = parts.scope === 'route'
  return JSON.stringify([
    'http',
    parts.client === undefined ? null : clientDigest(parts.client),
    byRoute ? parts.method.toUpperCase() : null,
    byRoute ? parts.route : null,
    parts.customerId ?? null,
  ])
}
