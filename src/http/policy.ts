import type { IsolationLevel } from '../data/database.ts'
import type { DatabaseInput, TransactionOf } from '../data/resolve-database.ts'
import type { Duration } from '../duration.ts'
import { IdempotencyUsageError } from '../errors.ts'
import { MAX_JSON_DEPTH } from '../json.ts'
import type { KeyFormat } from '../key.ts'
import { DEFAULT_MAX_BODY_DEPTH, type BodyRules } from './body-fingerprint.ts'
import { ignoredFieldsOf } from '../canonical-json.ts'
import { DEFAULT_PROBLEM_TYPE_BASE } from './problem.ts'
import { DEFAULT_MAX_BODY_BYTES } from './request-body.ts'

/** How one route treats idempotency keys. Every field has a default; set what differs. */
export interface IdempotencyPolicy {
  /** The request header that carries the key. Default `'Idempotency-Key'`; `'x-request-id'` for request-id APIs. */
  header?: string
  /** A missing key is a `400` when required. Default `false`: without a key every request is new. */
  required?: boolean
  /** `'any'` (default), `'uuid'` or `'uuid-v4'`. */
  keyFormat?: KeyFormat
  /** How long a key replays. Default `'24h'`. */
  ttl?: Duration
  /**
   * Same key, different request: `'reject'` answers `422` (the IETF draft), `'conflict'` answers
   * `409` (APIs that document that), `'replay'` returns the first response regardless. A function
   * decides in the transaction (it may write through `tx`, say to apply a changed field to the
   * object the first request made) and answers `'replay'` or `'reject'` (`422`).
   */
  onMismatch?: 'reject' | 'conflict' | 'replay' | HttpMismatchHandler
  /**
   * A request that arrives while its twin runs: `'reject'` (default) answers `409` with
   * `Retry-After` as the IETF draft says; `'wait'` waits for the twin and replays its response.
   */
  onConcurrent?: 'reject' | 'wait'
  /** With `onConcurrent: 'wait'`, the longest wait. Default `'10s'`. */
  waitTimeout?: Duration
  /**
   * What the key is unique within. `'route'` (default): the client, the method and the route
   * pattern. `'client'`: the client alone, so a request id is never reused across APIs.
   */
  scope?: 'route' | 'client'
  /**
   * The route acts on behalf of a customer, named by `X-Customer-Id` or
   * `X-Customer-Idempotent-Identifier`: the customer is resolved in the request's transaction
   * before the key is claimed, is part of the key's scope and row (so deleting the customer
   * deletes its keys), and is handed to the handler. Both headers or neither, a non-UUID id, an
   * unknown customer and one being deleted are `400`, `400`, `400`, `404` and `410` problems.
   * Default `false`.
   */
  customer?: boolean
  /** Response headers stored and replayed (lower case). Default content-type, location, etag. */
  storeHeaders?: readonly string[]
  /** JSON body fields left out of the fingerprint, as dotted paths (`'metadata.sentAt'`). */
  ignoreFields?: readonly string[]
  /** The largest body a keyed request (on Hono, any request of `methods`) may have, in bytes: larger is a `413`. Default 1 MiB. */
  maxBodyBytes?: number
  /** The deepest nesting of arrays and objects in a keyed request's JSON body: deeper is a `400`. Default 100, at most 1000. */
  maxBodyDepth?: number
  /** The methods that take keys. Default POST and PATCH; others pass through untouched. */
  methods?: readonly string[]
  /** The transaction's isolation level. Default the database's (READ COMMITTED). */
  isolation?: IsolationLevel
}

/**
 * A mismatch decided by the route: see {@link IdempotencyPolicy.onMismatch}. `D` is the database
 * (see {@link IdempotencyHttpOptions}); `tx` is its data layer's transaction.
 */
export type HttpMismatchHandler<D = any, Raw = any> = (mismatch: {
  tx: TransactionOf<D>
  /** The response stored for the key's first request. */
  stored: { status: number; headers: Record<string, string>; body: unknown }
  /** The framework's request that did not match. */
  request: Raw
  firstSeenAt: Date
}) => 'replay' | 'reject' | Promise<'replay' | 'reject'>

/**
 * Options shared by all routes of an adapter; each route's policy overrides them. `D` is the
 * type of `db`, inferred from it (a kysely database type `DB`, as before, stands for `Kysely<DB>`).
 */
export interface IdempotencyHttpOptions<D, Raw> extends IdempotencyPolicy {
  /**
   * Any data layer's database (`database(…)` from its subpath) or a Kysely instance. Handlers get
   * its transaction as `tx`: a `Transaction<DB>` for a `Kysely<DB>`.
   */
  db: D | DatabaseInput<TransactionOf<D>>
  /**
   * Who the caller is: an id your authentication established (the id of the caller's API key, a
   * tenant id), never the credential itself. Part of every scope, so one client can never read
   * another's stored response; the key table keeps only a digest of it. Return undefined for
   * anonymous callers.
   */
  client?: (request: Raw) => string | undefined | Promise<string | undefined>
  /** Where the migrations put the key table. Default `'idempotency'`. */
  schema?: string
  /** Prefix of the problem `type` URIs. */
  problemTypeBase?: string
}

/** Credentials and cookies are never stored, whatever the allow-list says. */
const NEVER_STORED = new Set([
  'set-cookie',
  'set-cookie2',
  'cookie',
  'authorization',
  'proxy-authorization',
  'www-authenticate',
  'proxy-authenticate',
  'authentication-info',
  'proxy-authentication-info',
])

export interface ResolvedPolicy<D, Raw> {
  db: D | DatabaseInput<TransactionOf<D>>
  client: (request: Raw) => string | undefined | Promise<string | undefined>
  header: string
  required: boolean
  keyFormat: KeyFormat
  ttl: Duration
  onMismatch: 'reject' | 'conflict' | 'replay' | HttpMismatchHandler<D, Raw>
  onConcurrent: 'reject' | 'wait'
  waitTimeout: Duration
  scope: 'route' | 'client'
  customer: boolean
  storeHeaders: string[]
  ignoreFields: string[][]
  /** What the body's fingerprint needs: its limits and the ignored fields. */
  body: BodyRules
  methods: Set<string>
  isolation: IsolationLevel | undefined
  schema: string | undefined
  problemTypeBase: string
}

export function resolvePolicy<D, Raw>(options: IdempotencyHttpOptions<D, Raw>, route: IdempotencyPolicy = {}): ResolvedPolicy<D, Raw> {
  const merged = { ...options, ...route }
  if (!merged.db) throw new IdempotencyUsageError("The idempotency middleware needs a database as `db`: a data layer's database (database(db) from 'pg-idempotency/<layer>') or a Kysely instance.")
  const onMismatch = merged.onMismatch ?? 'reject'
  if (typeof onMismatch !== 'function' && !['reject', 'conflict', 'replay'].includes(onMismatch)) {
    throw new IdempotencyUsageError(`onMismatch must be 'reject', 'conflict', 'replay' or a function; got ${String(onMismatch)}.`)
  }
  const scope = merged.scope ?? 'route'
  if (scope !== 'route' && scope !== 'client') throw new IdempotencyUsageError(`scope must be 'route' or 'client'; got ${String(scope)}.`)
  if (merged.customer !== undefined && typeof merged.customer !== 'boolean') {
    throw new IdempotencyUsageError(`customer must be true or false; got ${String(merged.customer)}.`)
  }
  const ignoreFields = (merged.ignoreFields ?? []).map((path) => path.split('.'))
  const body: BodyRules = {
    maxBodyBytes: positiveInteger('maxBodyBytes', merged.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, Number.MAX_SAFE_INTEGER),
    maxBodyDepth: positiveInteger('maxBodyDepth', merged.maxBodyDepth ?? DEFAULT_MAX_BODY_DEPTH, MAX_JSON_DEPTH),
    ignoredFields: ignoredFieldsOf(ignoreFields),
  }
  return {
    db: merged.db,
    client: merged.client ?? (() => undefined),
    header: (merged.header ?? 'Idempotency-Key').toLowerCase(),
    required: merged.required ?? false,
    keyFormat: merged.keyFormat ?? 'any',
    ttl: merged.ttl ?? '24h',
    onMismatch,
    onConcurrent: merged.onConcurrent ?? 'reject',
    waitTimeout: merged.waitTimeout ?? '10s',
    scope,
    customer: merged.customer === true,
    storeHeaders: (merged.storeHeaders ?? ['content-type', 'location', 'etag']).map((h) => h.toLowerCase()).filter((h) => !NEVER_STORED.has(h)),
    ignoreFields,
    body,
    methods: new Set((merged.methods ?? ['POST', 'PATCH']).map((m) => m.toUpperCase())),
    isolation: merged.isolation,
    schema: merged.schema,
    problemTypeBase: merged.problemTypeBase ?? DEFAULT_PROBLEM_TYPE_BASE,
  }
}

function positiveInteger(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new IdempotencyUsageError(`${name} must be an integer from 1 to ${max}; got ${String(value)}.`)
  return value
}

