import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { useTestDatabase } from '../support/test-database.ts'
import { Latch } from '../support/concurrency.ts'
import { kyselyHttp, type HttpLayer } from './contract-layers.ts'
import { counters, createItemsTable, latches } from './contract-routes.ts'
import { rawRequest } from './raw-http.ts'
import type { RunningServer, StartServer } from './servers.ts'

/**
 * The behaviour every adapter must show over real HTTP against a real PostgreSQL: the same
 * suite runs for Express, Fastify and Hono, on kysely, and on each other data layer with one of
 * them (the middleware's `db` that layer's `database(…)`, the handlers writing through its own
 * transaction).
 */
export function describeHttpContract(framework: string, start: StartServer, layer: HttpLayer = kyselyHttp): void {
  const database = useTestDatabase()
  let server: RunningServer
  let app: ReturnType<HttpLayer['open']> | undefined
  if (layer !== kyselyHttp) framework = `${framework} on ${layer.name}`

  beforeAll(async () => {
    await createItemsTable(database.db)
    app = layer.open(database.url)
    server = await start(app)
  })
  afterAll(async () => {
    await server?.close()
    await app?.close()
  })
  beforeEach(() => {
    latches.slow = undefined
  })

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const items = async (name: string) => {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from items where name = ${name}`.execute(database.db)
    return rows[0]!.n
  }
  const keysOf = async (key: string) => {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
    return rows[0]!.n
  }
  const problemOf = async (response: Response) => {
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    return (await response.json()) as { type: string; status: number; title: string; detail: string }
  }

  describe(`${framework}: keys over HTTP`, () => {
    it('runs a POST once and replays it byte for byte, with Idempotent-Replayed and stored headers only', async () => {
      const key = randomUUID()
      const name = randomUUID()
      const first = await post('/items', { name }, { 'idempotency-key': key })
      expect(first.status).toBe(201)
      expect(first.headers.get('set-cookie')).toBe('session=secret')
      expect(first.headers.get('idempotent-replayed')).toBeNull()
      const firstBody = await first.text()

      const again = await post('/items', { name }, { 'idempotency-key': key })
      expect(again.status).toBe(201)
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(await again.text()).toBe(firstBody)
      expect(again.headers.get('location')).toBe(first.headers.get('location'))
      expect(again.headers.get('content-type')).toMatch(/^application\/json/)
      // Credentials and headers off the allow-list are never stored.
      expect(again.headers.get('set-cookie')).toBeNull()
      expect(again.headers.get('x-trace')).toBeNull()
      expect(await items(name)).toBe(1)
    })

    it('accepts the key as a Structured Field string or a bare token: the same key', async () => {
      const key = `k-${randomUUID()}`
      const name = randomUUID()
      expect((await post('/items', { name }, { 'idempotency-key': `"${key}"` })).status).toBe(201)
      const again = await post('/items', { name }, { 'idempotency-key': key })
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(await items(name)).toBe(1)
    })

    it('answers 400 problem details for a missing required key and for an invalid key', async () => {
      const missing = await post('/items', { name: 'x' })
      expect(missing.status).toBe(400)
      expect((await problemOf(missing)).type).toMatch(/idempotency-key-missing$/)
      for (const bad of ['k'.repeat(256), '"unterminated', '"a\\qb"']) {
        const invalid = await post('/items', { name: 'x' }, { 'idempotency-key': bad })
        expect(invalid.status).toBe(400)
        expect((await problemOf(invalid)).type).toMatch(/idempotency-key-invalid$/)
      }
    })

    it('answers 422 for the same key with another body, or 409 on routes that document that', async () => {
      const key = randomUUID()
      await post('/items', { name: 'one' }, { 'idempotency-key': key })
      const mismatch = await post('/items', { name: 'two' }, { 'idempotency-key': key })
      expect(mismatch.status).toBe(422)
      expect(mismatch.headers.get('retry-after')).toBeNull()
      expect((await problemOf(mismatch)).type).toMatch(/idempotency-key-mismatch$/)

      const other = randomUUID()
      await post('/items-conflict', { name: 'one' }, { 'idempotency-key': other })
      const conflict = await post('/items-conflict', { name: 'two' }, { 'idempotency-key': other })
      expect(conflict.status).toBe(409)
      expect(conflict.headers.get('retry-after')).toBeNull()
      expect((await problemOf(conflict)).type).toMatch(/idempotency-key-mismatch$/)
    })

    it('fingerprints the concrete path: the same key for another account is a mismatch', async () => {
      const key = randomUUID()
      expect((await post('/accounts/1/items', { name: 'p' }, { 'idempotency-key': key })).status).toBe(201)
      expect((await post('/accounts/2/items', { name: 'p' }, { 'idempotency-key': key })).status).toBe(422)
      expect((await post('/accounts/1/items', { name: 'p' }, { 'idempotency-key': key })).headers.get('idempotent-replayed')).toBe('true')
    })

    it('leaves ignored fields out of the fingerprint', async () => {
      const key = randomUUID()
      const name = randomUUID()
      await post('/items', { name, sentAt: '10:00' }, { 'idempotency-key': key })
      const again = await post('/items', { name, sentAt: '10:01' }, { 'idempotency-key': key })
      expect(again.headers.get('idempotent-replayed')).toBe('true')
    })

    it('scopes keys by client: the same key from two clients is two keys', async () => {
      const key = randomUUID()
      const name = randomUUID()
      const a = await post('/items', { name }, { 'idempotency-key': key, 'x-api-key': 'client-a' })
      const b = await post('/items', { name }, { 'idempotency-key': key, 'x-api-key': 'client-b' })
      expect([a.headers.get('idempotent-replayed'), b.headers.get('idempotent-replayed')]).toEqual([null, null])
      expect(await items(name)).toBe(2)
    })

    it('replays a request id across routes and bodies when the scope is the client', async () => {
      const id = randomUUID()
      const first = await post('/requests/a', { name: 'first' }, { 'x-request-id': id })
      const otherBody = await post('/requests/a', { name: 'changed' }, { 'x-request-id': id })
      const otherRoute = await post('/requests/b', { name: 'elsewhere' }, { 'x-request-id': id })
      const firstBody = await first.text()
      expect(await otherBody.text()).toBe(firstBody)
      expect(await otherRoute.text()).toBe(firstBody)
      expect(await items('changed')).toBe(0)
      // No request id: every POST is new.
      await post('/requests/a', { name: 'fresh' })
      await post('/requests/a', { name: 'fresh' })
      expect(await items('fresh')).toBe(2)
      const notUuid = await post('/requests/a', { name: 'x' }, { 'x-request-id': 'abc' })
      expect(notUuid.status).toBe(400)
    })

    it('answers 409 with Retry-After while the first request with the key runs', async () => {
      const key = randomUUID()
      const latch = (latches.slow = new Latch())
      const first = post('/slow', { name: 'slow' }, { 'idempotency-key': key })
      await latch.entered
      const twin = await post('/slow', { name: 'slow' }, { 'idempotency-key': key })
      expect(twin.status).toBe(409)
      expect(twin.headers.get('retry-after')).toBe('1')
      expect((await problemOf(twin)).type).toMatch(/idempotency-key-in-progress$/)
      latch.release()
      expect((await first).status).toBe(201)
    })

    it.skipIf(layer.skipLostConnection !== undefined)('answers a connection lost during the claim with a retryable 503 problem, and the retry replays', async () => {
      const key = randomUUID()
      const name = randomUUID()
      const latch = (latches.slow = new Latch())
      const first = post('/waiting', { name }, { 'idempotency-key': key })
      await latch.entered
      const twin = post('/waiting', { name }, { 'idempotency-key': key })
      // The twin's connection waits on the key's lock; end it from the server's side.
      let pid: number | undefined
      while (pid === undefined) {
        const { rows } = await sql<{ pid: number }>`
          select pid from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`.execute(database.db)
        pid = rows[0]?.pid
      }
      await sql`select pg_terminate_backend(${pid})`.execute(database.db)
      const lost = await twin
      expect(lost.status).toBe(503)
      expect(lost.headers.get('retry-after')).toBe('1')
      expect(await problemOf(lost)).toMatchObject({ code: 'IDEMPOTENCY_STORE_FAILED', retryable: true })
      latch.release()
      expect((await first).status).toBe(201)
      const retry = await post('/waiting', { name }, { 'idempotency-key': key })
      expect(retry.headers.get('idempotent-replayed')).toBe('true')
      expect(await items(name)).toBe(1)
    })

    it("waits for the twin and replays its response with onConcurrent: 'wait'", async () => {
      const key = randomUUID()
      const name = randomUUID()
      const latch = (latches.slow = new Latch())
      const first = post('/waiting', { name }, { 'idempotency-key': key })
      await latch.entered
      const twin = post('/waiting', { name }, { 'idempotency-key': key })
      latch.release()
      const [a, b] = await Promise.all([first, twin])
      expect(await b.text()).toBe(await a.text())
      expect(b.headers.get('idempotent-replayed')).toBe('true')
      expect(await items(name)).toBe(1)
    })

    it('retries SERIALIZABLE snapshot conflicts itself: every twin gets the replay, one row is written', async () => {
      const key = randomUUID()
      const name = randomUUID()
      const latch = (latches.slow = new Latch())
      const first = post('/serializable', { name }, { 'idempotency-key': key })
      await latch.entered
      const twins = Array.from({ length: 5 }, () => post('/serializable', { name }, { 'idempotency-key': key }))
      latch.release()
      const responses = await Promise.all([first, ...twins])
      expect(responses.map((r) => r.status)).toEqual([201, 201, 201, 201, 201, 201])
      expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(5)
      expect(await items(name)).toBe(1)
    })

    it('stores nothing for an unexpected exception: the framework answers 500 and a retry runs again', async () => {
      const key = randomUUID()
      const before = counters.boom
      expect((await post('/boom', { name: 'boom' }, { 'idempotency-key': key })).status).toBe(500)
      expect((await post('/boom', { name: 'boom' }, { 'idempotency-key': key })).status).toBe(500)
      expect(counters.boom - before).toBe(2)
      expect(await keysOf(key)).toBe(0)
      expect(await items('boom')).toBe(0)
    })

    it('stores a 4xx only when the handler marks it final', async () => {
      const key = randomUUID()
      const rejectedBefore = counters.rejected
      expect((await post('/rejected', { name: 'r' }, { 'idempotency-key': key })).status).toBe(400)
      expect((await post('/rejected', { name: 'r' }, { 'idempotency-key': key })).status).toBe(400)
      expect(counters.rejected - rejectedBefore).toBe(2)
      expect(await keysOf(key)).toBe(0)
      expect(await items('r')).toBe(0)

      const declinedKey = randomUUID()
      const declinedBefore = counters.declined
      const first = await post('/declined', { name: 'd' }, { 'idempotency-key': declinedKey })
      const again = await post('/declined', { name: 'd' }, { 'idempotency-key': declinedKey })
      expect([first.status, again.status]).toEqual([402, 402])
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(counters.declined - declinedBefore).toBe(1)
    })

    it('sends a returned 5xx (final or not) without storing it, and rolls its writes back', async () => {
      for (const final of [false, true]) {
        const key = randomUUID()
        const name = randomUUID()
        const before = counters.unavailable
        const first = await post('/unavailable', { name, final }, { 'idempotency-key': key })
        const again = await post('/unavailable', { name, final }, { 'idempotency-key': key })
        expect([first.status, again.status]).toEqual([503, 503])
        expect(await first.json()).toEqual({ error: 'try_later' })
        expect(again.headers.get('idempotent-replayed')).toBeNull()
        expect(counters.unavailable - before).toBe(2)
        expect(await keysOf(key)).toBe(0)
        expect(await items(name)).toBe(0)
      }
    })

    it("maps the library's errors to their problem status with a key and without one", async () => {
      for (const key of [randomUUID(), undefined]) {
        const headers: Record<string, string> = key === undefined ? {} : { 'idempotency-key': key }
        const notFound = await post('/customer-errors', { kind: 'not-found' }, headers)
        expect(notFound.status).toBe(404)
        expect(await problemOf(notFound)).toMatchObject({ status: 404, code: 'CUSTOMER_NOT_FOUND', retryable: false })
        const both = await post('/customer-errors', { kind: 'both' }, headers)
        expect(both.status).toBe(400)
        expect(await problemOf(both)).toMatchObject({ status: 400, code: 'CUSTOMER_REFERENCE_INVALID', retryable: false })
      }
    })

    it('answers a result that can never be stored with its own non-retryable problem, storing nothing', async () => {
      const key = randomUUID()
      const name = randomUUID()
      const response = await post('/unstorable', { name }, { 'idempotency-key': key })
      expect(response.status).toBe(422)
      const body = await problemOf(response)
      expect(body.type).toMatch(/idempotency-result-invalid$/)
      expect(body).toMatchObject({ code: 'IDEMPOTENCY_RESULT_INVALID', retryable: false })
      expect(body.title).not.toMatch(/unavailable|retry/i)
      expect(response.headers.get('retry-after')).toBeNull()
      expect(await keysOf(key)).toBe(0)
      expect(await items(name)).toBe(0)
    })

    it('lets GET pass through untouched', async () => {
      const response = await fetch(server.url + '/items', { headers: { 'idempotency-key': randomUUID() } })
      expect(response.status).toBe(200)
      expect(response.headers.get('idempotent-replayed')).toBeNull()
    })
  })

  describe(`${framework}: what the fingerprint sees`, () => {
    const send = (path: string, key: string, contentType: string | undefined, body: string | Buffer) =>
      fetch(server.url + path, { method: 'POST', headers: { 'idempotency-key': key, ...(contentType ? { 'content-type': contentType } : {}) }, body })
    const runs = async (response: Response) => ((await response.json()) as { run: number }).run

    it.each([
      ['application/x-www-form-urlencoded', 'amount=10&to=alice', 'amount=99&to=mallory'],
      ['text/plain; charset=utf-8', 'pay alice 10', 'pay mallory 99'],
      ['application/octet-stream', 'a\u0000b', 'a\u0000c'],
      ['application/json-seq', '\u001e{"amount":10}\n', '\u001e{"amount":99}\n'],
    ])('fingerprints a %s body by its bytes: another body with the key is a mismatch, never a replay', async (type, first, other) => {
      const key = randomUUID()
      const created = await send('/bodies', key, type, first)
      expect(created.status).toBe(201)
      const run = await runs(created)
      const mismatch = await send('/bodies', key, type, other)
      expect(mismatch.status).toBe(422)
      expect((await problemOf(mismatch)).type).toMatch(/idempotency-key-mismatch$/)
      const again = await send('/bodies', key, type, first)
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(await runs(again)).toBe(run)
    })

    it('fingerprints the content type with the bytes: the same bytes as another type is a mismatch', async () => {
      const key = randomUUID()
      expect((await send('/bodies', key, 'text/plain; charset=utf-8', 'amount=10')).status).toBe(201)
      expect((await send('/bodies', key, 'text/plain; charset=iso-8859-1', 'amount=10')).status).toBe(422)
      expect((await send('/bodies', key, 'application/x-www-form-urlencoded', 'amount=10')).status).toBe(422)
    })

    it('tells JSON numbers apart beyond 2^53, and keeps their text', async () => {
      const key = randomUUID()
      expect((await send('/bodies', key, 'application/json', '{"amount":9007199254740993}')).status).toBe(201)
      expect((await send('/bodies', key, 'application/json', '{"amount":9007199254740992}')).status).toBe(422)
      expect((await send('/bodies', key, 'application/json', '{"amount":9007199254740993.0}')).status).toBe(422)
      const same = await send('/bodies', key, 'application/json', ' { "amount" : 9007199254740993 } ')
      expect(same.headers.get('idempotent-replayed')).toBe('true')
    })

    it('ignores key order, whitespace and escapes in a JSON body, and honours nested ignoreFields', async () => {
      const key = randomUUID()
      expect((await send('/bodies', key, 'application/json', '{"a":1,"b":"x","meta":{"sentAt":"10:00","id":7}}')).status).toBe(201)
      const same = await send('/bodies', key, 'application/json; charset=utf-8', '{ "meta": {"id": 7, "sentAt": "10:01"}, "b": "\\u0078",\n "a": 1 }')
      expect(same.headers.get('idempotent-replayed')).toBe('true')
      expect((await send('/bodies', key, 'application/json', '{"a":1,"b":"x","meta":{"sentAt":"10:00","id":8}}')).status).toBe(422)
    })

    it('tells apart a repeated member name from the member alone', async () => {
      const key = randomUUID()
      expect((await send('/bodies', key, 'application/json', '{"to":"alice","to":"mallory"}')).status).toBe(201)
      expect((await send('/bodies', key, 'application/json', '{"to":"mallory"}')).status).toBe(422)
    })

    it('refuses a JSON body that is not UTF-8 with 400 problem details, storing nothing (two such bodies never share a fingerprint)', async () => {
      for (const bytes of [Buffer.from('{"to":"\xff"}', 'latin1'), Buffer.from('{"to":"\xfe"}', 'latin1'), Buffer.from('{"to":"\xc0\xaf"}', 'latin1'), Buffer.from('{"to":"\xed\xa0\x80"}', 'latin1')]) {
        const key = randomUUID()
        const response = await send('/bodies', key, 'application/json', bytes)
        expect(response.status).toBe(400)
        expect((await problemOf(response)).type).toMatch(/idempotency-request-invalid$/)
        expect(await keysOf(key)).toBe(0)
      }
    })

    it('refuses a JSON body that is not JSON with 400, storing nothing (the framework\'s parser may answer first)', async () => {
      for (const text of ['{"to":', '{"to":"a"} x', '{"to":"\\u0000"}', '{"to":"\\ud800"}']) {
        const key = randomUUID()
        expect((await send('/bodies', key, 'application/json', text)).status, text).toBe(400)
        expect(await keysOf(key)).toBe(0)
      }
    })

    it('answers 413 problem details past maxBodyBytes, declared or sent in chunks, storing nothing', async () => {
      const key = randomUUID()
      const declared = await send('/small-bodies', key, 'application/json', JSON.stringify({ pad: 'x'.repeat(2000) }))
      expect(declared.status).toBe(413)
      expect((await problemOf(declared)).type).toMatch(/idempotency-request-too-large$/)
      const chunks = new ReadableStream({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(500)))
          controller.close()
        },
      })
      const chunked = await fetch(server.url + '/small-bodies', {
        method: 'POST',
        headers: { 'idempotency-key': key, 'content-type': 'text/plain' },
        body: chunks,
        duplex: 'half',
      } as RequestInit)
      expect(chunked.status).toBe(413)
      expect(await keysOf(key)).toBe(0)
      expect((await send('/small-bodies', key, 'text/plain', 'x'.repeat(1024))).status).toBe(201)
    })

    it('answers 413 past the default limit of 1 MiB', async () => {
      const response = await send('/bodies', randomUUID(), 'application/octet-stream', Buffer.alloc(1024 * 1024 + 1))
      expect(response.status).toBe(413)
    })

    it('refuses JSON nested deeper than maxBodyDepth with 400, and the deep bodies of the issue', async () => {
      const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)
      expect((await send('/small-bodies', randomUUID(), 'application/json', nested(8))).status).toBe(201)
      const deep = await send('/small-bodies', randomUUID(), 'application/json', nested(9))
      expect(deep.status).toBe(400)
      expect((await problemOf(deep)).detail).toMatch(/deeper than 8/)
      const hostile = `[${Array(240).fill(nested(2000)).join(',')}]`
      const refused = await send('/bodies', randomUUID(), 'application/json', hostile)
      expect(refused.status).toBe(400)
      expect((await problemOf(refused)).detail).toMatch(/deeper than 100/)
    })

    it('never stores credential headers, whatever the allow-list and their capitalisation', async () => {
      const key = randomUUID()
      const first = await post('/credentials', {}, { 'idempotency-key': key })
      expect(first.status).toBe(201)
      expect(first.headers.get('authentication-info')).toBe('nextnonce="secret"')
      const again = await post('/credentials', {}, { 'idempotency-key': key })
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(again.headers.get('x-kept')).toBe('kept')
      const credentials = ['set-cookie', 'set-cookie2', 'authorization', 'proxy-authorization', 'cookie', 'www-authenticate', 'proxy-authenticate', 'authentication-info', 'proxy-authentication-info']
      for (const name of credentials) expect(again.headers.get(name), name).toBeNull()
      const { rows } = await sql<{ response: string }>`select response::text as response from idempotency.idempotency_keys where key = ${key}`.execute(database.db)
      expect(rows[0]!.response).toContain('x-kept')
      expect(rows[0]!.response.toLowerCase()).not.toMatch(/secret|authoriz|authenticat|cookie/)
    })
  })

  describe(`${framework}: the key header, byte for byte`, () => {
    const raw = (headerLines: string[], body = '{"name":"raw"}') => rawRequest(server.url, 'POST', '/bodies', ['content-type: application/json', ...headerLines], body)

    it('answers 400 for repeated Idempotency-Key lines, different or equal', async () => {
      const a = randomUUID()
      for (const lines of [[`idempotency-key: ${a}`, `idempotency-key: ${randomUUID()}`], [`Idempotency-Key: ${a}`, `IDEMPOTENCY-KEY: ${a}`], [`idempotency-key: "${a}"`, `idempotency-key: "${randomUUID()}"`]]) {
        const response = await raw(lines)
        expect(response.status, lines.join(' | ')).toBe(400)
        expect(JSON.parse(response.body).type).toMatch(/idempotency-key-invalid$/)
      }
      expect(await keysOf(a)).toBe(0)
      expect(await keysOf(`${a}, ${a}`)).toBe(0)
    })

    it('refuses Structured Field parameters and keys outside the bare-key grammar', async () => {
      const key = randomUUID()
      for (const value of [`"${key}";x=1`, `"${key}";x`, `${key};x=1`, `${key} x`, `${key},`, 'caf\xe9', `"${key}" "x"`]) {
        const response = await raw([`idempotency-key: ${value}`])
        expect(response.status, value).toBe(400)
      }
      expect(await keysOf(key)).toBe(0)
    })

    it('takes a bare key and its Structured Field string as one key, over a raw socket too', async () => {
      const key = `k-${randomUUID()}`
      expect((await raw([`idempotency-key: ${key}`])).status).toBe(201)
      const again = await raw([`idempotency-key:   "${key}"  `])
      expect(again.headers['idempotent-replayed']).toBe('true')
    })

    it('answers a body declared past the limit without reading it, whether the key is valid or not', async () => {
      const key = randomUUID()
      const promised = ['content-type: text/plain', 'content-length: 1000000000']
      const valid = await rawRequest(server.url, 'POST', '/bodies', [...promised, `idempotency-key: ${key}`])
      expect(valid.status).toBe(413)
      expect(JSON.parse(valid.body).type).toMatch(/idempotency-request-too-large$/)
      // Fastify parses before any handler runs, so its refusal may be the size rather than the key.
      const invalid = await rawRequest(server.url, 'POST', '/bodies', [...promised, 'idempotency-key: a b'])
      expect([400, 413]).toContain(invalid.status)
      expect(await keysOf(key)).toBe(0)
    })

    it('compares UUID request ids case-insensitively (RFC 4122)', async () => {
      const id = randomUUID()
      const name = randomUUID()
      const first = await post('/requests/a', { name }, { 'x-request-id': id.toUpperCase() })
      const again = await post('/requests/a', { name }, { 'x-request-id': id })
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(await again.text()).toBe(await first.text())
      expect(await items(name)).toBe(1)
    })
  })
}
