import type { TransactionOf } from '../data/resolve-database.ts'
import type { Customer } from '../customers/customer.ts'
import type { RequestBody } from './request-body.ts'

/** What a framework adapter hands the HTTP core: the parts of a request the core looks at. */
export interface HttpRequest<Raw = unknown> {
  method: string
  /** The route pattern (`/accounts/:id/deposits`): part of the scope. */
  route: string
  /** The concrete path and query (`/accounts/42/deposits?x=1`): part of the fingerprint. */
  target: string
  /** A header by lower-case name; the first value when there are several. */
  header(name: string): string | undefined
  /**
   * The body's bytes as the client sent them, for the fingerprint: called only for a request that
   * carries a key, after the key is read. Throws a `413` error past `limit` bytes.
   */
  readBody(limit: number): Promise<RequestBody>
  /**
   * For a framework with no body limit of its own (Hono): bounds the body of a request the
   * handler runs for without a key, so the handler reads at most `limit` bytes. Throws a `413`
   * error past it.
   */
  boundBody?(limit: number): Promise<void>
  /** The framework's own request object. */
  raw: Raw
}

/** What an idempotent handler returns, and what is stored and replayed. */
export interface HandlerResult {
  status: number
  body?: unknown
  headers?: Record<string, string>
  /**
   * A 4xx outcome is not stored unless it is final: by default a 4xx rolls back and a retry
   * runs the handler again. Mark a business outcome (`402 card_declined`) final to store it.
   */
  final?: boolean
}

/** A response for the adapter to send. */
export interface HttpResponse {
  status: number
  headers: Record<string, string>
  body: unknown
}

/** `D` is the database (see `IdempotencyHttpOptions`); `tx` is its data layer's transaction. */
export interface HandlerContext<D, Raw> {
  /** The transaction the key is claimed in, as the data layer knows it: write through it. */
  tx: TransactionOf<D>
  /** The framework's request. */
  request: Raw
  /** The idempotency key, or undefined when the request has none (optional keys). */
  key: string | undefined
  /** On a route with `customer: true`, the customer the request is made for; otherwise undefined. */
  customer: Customer | undefined
}

export type IdempotentHandler<D, Raw> = (context: HandlerContext<D, Raw>) => Promise<HandlerResult> | HandlerResult
