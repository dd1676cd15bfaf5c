import type { IdempotencyDatabase } from '../data/database.ts'
import { toDatabase, type DatabaseInput, type TransactionOf } from '../data/resolve-database.ts'
import { IdempotencyError, IdempotencySnapshotConflictError, IdempotencyUsageError } from '../errors.ts'
import type { MismatchPolicy } from '../options.ts'
import { isConnectionLost } from '../store/connection-lost.ts'
import { translateDatabaseError } from '../store/database-errors.ts'
import { SqlState } from '../store/sql-state.ts'
import { withIdempotencyIn } from '../with-idempotency.ts'
import { fingerprintBody, type BodyFingerprint } from './body-fingerprint.ts'
import { readKeyHeader } from './key-header.ts'
import type { ResolvedPolicy } from './policy.ts'
import { problem, problemFromError, ProblemType } from './problem.ts'
import { customerOfRequest } from './request-customer.ts'
import { httpScope } from './scope.ts'
import type { HandlerResult, HttpRequest, HttpResponse, IdempotentHandler } from './types.ts'

/** Header set on every replayed response. */
export const REPLAYED_HEADER = 'idempotent-replayed'

// REPEATABLE READ and SERIALIZABLE twins get a snapshot conflict, and SERIALIZABLE may fail any
// transaction at COMMIT (40001) or pick it as a deadlock victim (40P01). The middleware owns the
// transaction, so it runs it again itself; the retry sees the twin's row and replays.
const SERIALIZATION_ATTEMPTS = 3

function isSerializationFailure(error: unknown, database: IdempotencyDatabase<any>): boolean {
  // The handler's own write may fail with it too, wrapped by its data layer (Drizzle, Prisma).
  const sqlState = database.sqlStateOf(error)
  return error instanceof IdempotencySnapshotConflictError || sqlState === SqlState.SERIALIZATION_FAILURE || sqlState === SqlState.DEADLOCK_DETECTED
}

/** The stored form of a response: what a replay sends back. */
interface StoredResponse {
  status: number
  headers: Record<string, string>
  body: unknown
}

/**
 * The framework-agnostic path every adapter takes: read the key, claim it in a transaction
 * that also runs the handler, and turn the outcome into a response (or a problem+json error).
 * Errors the handler throws propagate to the framework untouched; nothing is stored for them.
 */
export async function handleIdempotentRequest<D, Raw>(
  policy: ResolvedPolicy<D, Raw>,
  request: HttpRequest<Raw>,
  handler: IdempotentHandler<D, Raw>,
): Promise<HttpResponse> {
  const base = policy.problemTypeBase
  const mismatchStatus = policy.onMismatch === 'conflict' ? 409 : 422
  if (!policy.methods.has(request.method.toUpperCase())) return runWithoutKey(policy, request, handler)

  let key: string | undefined
  try {
    key = readKeyHeader(request.header(policy.header))
  } catch (error) {
    return problemFromError(base, error as IdempotencyError, mismatchStatus)
  }
  if (key === undefined) {
    if (!policy.required) return runWithoutKey(policy, request, handler)
    return problem(base, ProblemType.KEY_MISSING, 400, `This endpoint requires an ${policy.header} header.`, { code: 'IDEMPOTENCY_KEY_MISSING' })
  }

  const client = await policy.client(request.raw)
  let body: BodyFingerprint
  try {
    body = fingerprintBody(await request.readBody(policy.body.maxBodyBytes), policy.body)
  } catch (error) {
    return libraryProblem(policy, error)
  }
  // The concrete target, not just the route: the same key for another account is another request.
  const fingerprinted = { method: request.method.toUpperCase(), target: request.target, body }
  const options = {
    ttl: policy.ttl,
    onMismatch: mismatchPolicy(policy, request.raw),
    onConcurrent: policy.onConcurrent,
    waitTimeout: policy.waitTimeout,
    keyFormat: policy.keyFormat,
    ...(policy.schema === undefined ? {} : { schema: policy.schema }),
  }
  for (let attempt = 1; ; attempt++) {
    let firstHeaders: Record<string, string> = {}
    try {
      const database = databaseOf(policy)
      const outcome = await database.transaction(async (tx) => {
        const session = database.session(tx)
        // Before the claim: the customer is part of the scope, and its row stays locked against deletion.
        const customer = await customerOfRequest(session, policy, request, client)
        const scope = httpScope({ scope: policy.scope, client, method: request.method, route: request.route, customerId: customer?.customerId })
        return withIdempotencyIn(
          session,
          { scope, key, request: fingerprinted, ...(customer ? { customerId: customer.customerId } : {}) },
          async (tx) => {
            const result = checkResult(await handler({ tx, request: request.raw, key, customer }))
            firstHeaders = withContentType(result)
            if (!isStored(result)) throw new NotStored(result, firstHeaders)
            return stored(result, firstHeaders, policy.storeHeaders)
          },
          options,
        )
      }, isolationOf(policy))
      const response = outcome.value as StoredResponse
      if (outcome.replayed) return { ...response, headers: { ...response.headers, [REPLAYED_HEADER]: 'true' } }
      return { ...response, headers: firstHeaders }
    } catch (error) {
      if (error instanceof NotStored) return error.response
      if (isSerializationFailure(error, databaseOf(policy)) && attempt < SERIALIZATION_ATTEMPTS) continue
      // A connection refused or lost where none of the library's statements saw it (getting a
      // connection, BEGIN, the handler's own query) is answered as one lost during the claim: a
      // retryable 503. The transaction did not commit (at COMMIT it may have: the same key tells).
      return libraryProblem(policy, !(error instanceof IdempotencyError) && isConnectionLost(error) ? translateDatabaseError(error, 1) : error)
    }
  }
}

/** The core's mismatch policy for the HTTP one: a route's function sees the stored response and its own request. */
function mismatchPolicy<D, Raw>(policy: ResolvedPolicy<D, Raw>, raw: Raw): MismatchPolicy<TransactionOf<D>> {
  const decide = policy.onMismatch
  if (typeof decide !== 'function') return decide === 'replay' ? 'replay' : 'reject'
  return ({ tx, stored, firstSeenAt }) => decide({ tx, stored: stored as StoredResponse, request: raw, firstSeenAt })
}

/** A library error (from the claim, the store or the handler) as its problem; any other error is rethrown. */
function libraryProblem<D, Raw>(policy: ResolvedPolicy<D, Raw>, error: unknown): HttpResponse {
  if (error instanceof IdempotencyError && !(error instanceof IdempotencyUsageError)) {
    return problemFromError(policy.problemTypeBase, error, policy.onMismatch === 'conflict' ? 409 : 422)
  }
  throw error
}

/** No key (optional keys, or a method that takes none): the handler runs in a plain transaction. */
async function runWithoutKey<D, Raw>(policy: ResolvedPolicy<D, Raw>, request: HttpRequest<Raw>, handler: IdempotentHandler<D, Raw>): Promise<HttpResponse> {
  try {
    // Before the transaction: a slow body never holds a connection.
    await request.boundBody?.(policy.body.maxBodyBytes)
    const database = databaseOf(policy)
    return await database.transaction(async (tx) => {
      const customer = await customerOfRequest(database.session(tx), policy, request, policy.customer ? await policy.client(request.raw) : undefined)
      const result = checkResult(await handler({ tx, request: request.raw, key: undefined, customer }))
      const headers = withContentType(result)
      if (!isStored(result)) throw new NotStored(result, headers)
      return { status: result.status, headers, body: result.body }
    }, isolationOf(policy))
  } catch (error) {
    if (error instanceof NotStored) return error.response
    // The same mapping as with a key: a customer header the handler rejects is a 4xx here too.
    return libraryProblem(policy, error)
  }
}

// The policy's db as the library's database, made once per policy (a Kysely instance goes through the kysely adapter).
const databases = new WeakMap<object, IdempotencyDatabase<any>>()

function databaseOf<D, Raw>(policy: ResolvedPolicy<D, Raw>): IdempotencyDatabase<TransactionOf<D>> {
  let database = databases.get(policy)
  if (database === undefined) databases.set(policy, (database = toDatabase(policy.db as DatabaseInput)))
  return database
}

function isolationOf<D, Raw>(policy: ResolvedPolicy<D, Raw>) {
  return policy.isolation === undefined ? {} : { isolation: policy.isolation }
}

/** 2xx and 3xx are stored; a 4xx only when the handler marks it final; a 5xx never. */
function isStored(result: HandlerResult): boolean {
  return result.status < 400 || (result.status < 500 && result.final === true)
}

/** Rolls the transaction back while still answering with the handler's response. */
class NotStored {
  readonly response: HttpResponse
  constructor(result: HandlerResult, headers: Record<string, string>) {
    this.response = { status: result.status, headers, body: result.body }
  }
}

function checkResult(result: HandlerResult): HandlerResult {
  if (typeof result !== 'object' || result === null || !Number.isInteger(result.status) || result.status < 200 || result.status > 599) {
    throw new IdempotencyUsageError('An idempotent handler must return { status, body?, headers? } with a status from 200 to 599.')
  }
  return result
}

function withContentType(result: HandlerResult): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name.toLowerCase()] = String(value)
  if (result.body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json; charset=utf-8'
  return headers
}

function stored(result: HandlerResult, headers: Record<string, string>, allowed: string[]): StoredResponse {
  const kept: Record<string, string> = {}
  for (const name of allowed) if (headers[name] !== undefined) kept[name] = headers[name]
  return { status: result.status, headers: kept, body: result.body }
}
