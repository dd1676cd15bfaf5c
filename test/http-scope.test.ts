import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { validateKey } from '../src/key.ts'
import { clientDigest, httpScope, resolvePolicy, type HttpScopeParts } from '../src/http/index.ts'

// Parts chosen to collide under any delimiter-joined encoding: separators, quotes, escapes and
// the words other parts use.
const clients = [undefined, '', 'a', 'a b', 'a POST /x', 'anonymous', 'null', 'client:a', 'a"', 'a\\', 'a","POST', '["http"', ' a', 'a ', 'a\u00a0b', '😀', 'a\ud800', 'a\ufffd']
const methods = ['POST', 'post', 'PATCH', 'POST /x']
const routes = ['/x', '/x ', ' /x', '/x POST', '', '/a","b', '/\\"', '/ü']
const customers = [undefined, randomUUID(), randomUUID()]

function* tuples(): Generator<HttpScopeParts> {
  for (const client of clients)
    for (const customerId of customers) {
      yield { scope: 'client', client, method: 'POST', route: '/x', customerId }
      for (const method of methods) for (const route of routes) yield { scope: 'route', client, method, route, customerId }
    }
}

/** What identifies a request's scope: the route parts only count for `scope: 'route'`, methods in any case. */
const identity = (p: HttpScopeParts) =>
  JSON.stringify([p.client ?? null, p.client === undefined, p.scope === 'route' ? p.method.toUpperCase() : null, p.scope === 'route' ? p.route : null, p.customerId ?? null])

describe('httpScope', () => {
  it('gives different tuples different scopes, whatever characters their parts hold', () => {
    const byScope = new Map<string, string>()
    let count = 0
    for (const parts of tuples()) {
      count++
      const scope = httpScope(parts)
      const seen = byScope.get(scope)
      if (seen !== undefined) expect(seen).toBe(identity(parts))
      byScope.set(scope, identity(parts))
    }
    expect(count).toBeGreaterThan(1000)
    expect(new Set(byScope.values()).size).toBe(byScope.size)
  })

  it('never holds the client id itself, and is a valid scope for the key table', () => {
    const client = `sk_live_${randomUUID()}`
    const scope = httpScope({ scope: 'route', client, method: 'post', route: '/accounts/:id/deposits', customerId: undefined })
    expect(scope).not.toContain(client)
    expect(scope).toContain(clientDigest(client))
    expect(() => validateKey({ key: 'k', scope })).not.toThrow()
    // Control characters and lone surrogates in a route come out escaped: still a valid scope.
    expect(() => validateKey({ key: 'k', scope: httpScope({ scope: 'route', client: 'a', method: 'POST', route: '/x\u0000\ud800', customerId: undefined }) })).not.toThrow()
  })

  it('digests the client under its own domain, stably', () => {
    expect(clientDigest('client-a')).toBe(clientDigest('client-a'))
    expect(clientDigest('client-a')).not.toBe(clientDigest('client-b'))
    expect(clientDigest('client-a')).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })
})

describe('the customer policy', () => {
  it('is off by default, and anything but a boolean is a usage error', () => {
    const db = {} as never
    expect(resolvePolicy({ db }).customer).toBe(false)
    expect(resolvePolicy({ db }, { customer: true }).customer).toBe(true)
    expect(() => resolvePolicy({ db }, { customer: 'yes' as never })).toThrow(expect.objectContaining({ code: 'IDEMPOTENCY_USAGE' }))
  })
})
