/**
 * Every error the library raises on purpose is an {@link IdempotencyError}: match on `code`
 * (stable across releases) or on the subclass, never on the message.
 *
 * @example
 * ```ts
 * try {
 *   await db.transaction().execute((tx) => withIdempotency(tx, key, handler))
 * } catch (error) {
 *   if (error instanceof IdempotencyError) reply.status(error.httpStatus).send({ code: error.code })
 *   else throw error
 * }
 * ```
 */
export const IdempotencyErrorCode = {
  /** The key is empty, too long, has control characters, or fails the required format. */
  KEY_INVALID: 'IDEMPOTENCY_KEY_INVALID',
  /** The key was first used with a different request. */
  KEY_MISMATCH: 'IDEMPOTENCY_KEY_MISMATCH',
  /** Another transaction holds the key and has not finished. Retry after `retryAfterSeconds`. */
  KEY_IN_PROGRESS: 'IDEMPOTENCY_KEY_IN_PROGRESS',
  /**
   * Under REPEATABLE READ or SERIALIZABLE, the claim could not be serialized with a concurrent
   * transaction: most often the first request with this key committed after this transaction
   * took its snapshot. `fn` did not run; retry the whole transaction (it will see the replay).
   */
  SNAPSHOT_CONFLICT: 'IDEMPOTENCY_SNAPSHOT_CONFLICT',
  /** The request is not a JSON value, so it cannot be fingerprinted. */
  REQUEST_INVALID: 'IDEMPOTENCY_REQUEST_INVALID',
  /** The request body is larger than the route's `maxBodyBytes`. */
  REQUEST_TOO_LARGE: 'IDEMPOTENCY_REQUEST_TOO_LARGE',
  /**
   * The handler returned (or failed with) something that can never be stored: not JSON, a NUL
   * character, a lone surrogate. Nothing is stored; a retry would fail the same way.
   */
  RESULT_INVALID: 'IDEMPOTENCY_RESULT_INVALID',
  /** An event given to emit() is not storable: its payload is not JSON, or a field breaks the rules. */
  EVENT_INVALID: 'OUTBOX_EVENT_INVALID',
  /** The library was called wrongly: no transaction, bad options. A bug in the caller. */
  USAGE: 'IDEMPOTENCY_USAGE',
  /** The key table or claim function is missing: run `migrate()` first. */
  NOT_MIGRATED: 'IDEMPOTENCY_NOT_MIGRATED',
  /**
   * The database refused a statement of the library's for another reason; see `cause`. With
   * `retryable: true` (a lost connection, a timeout outside the claim's wait) send it again.
   */
  STORE_FAILED: 'IDEMPOTENCY_STORE_FAILED',
  /** A customer's idempotent identifier (or a context field) breaks the length or character rules. */
  CUSTOMER_IDENTIFIER_INVALID: 'CUSTOMER_IDENTIFIER_INVALID',
  /** A customer's idempotent identifier looks like personal data (`kind` says which). */
  CUSTOMER_IDENTIFIER_PERSONAL_DATA: 'CUSTOMER_IDENTIFIER_PERSONAL_DATA',
  /** Both `X-Customer-Id` and `X-Customer-Idempotent-Identifier` were sent, or the id is not a UUID. */
  CUSTOMER_REFERENCE_INVALID: 'CUSTOMER_REFERENCE_INVALID',
  /** No customer of this client has that id or identifier. */
  CUSTOMER_NOT_FOUND: 'CUSTOMER_NOT_FOUND',
  /** The customer is being deleted: its identifier stays taken until the deletion finishes. */
  CUSTOMER_DELETING: 'CUSTOMER_DELETING',
} as const

export type IdempotencyErrorCode = (typeof IdempotencyErrorCode)[keyof typeof IdempotencyErrorCode]

export interface IdempotencyErrorOptions {
  cause?: unknown
}

/** Base class of every error the library raises on purpose. */
export class IdempotencyError extends Error {
  readonly code: IdempotencyErrorCode
  /** The HTTP status an API should answer with. */
  readonly httpStatus: number
  /** Whether the same request may succeed if simply sent again later. */
  readonly retryable: boolean

  constructor(
    code: IdempotencyErrorCode,
    httpStatus: number,
    message: string,
    options: IdempotencyErrorOptions & { retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.httpStatus = httpStatus
    this.retryable = options.retryable ?? false
  }
}

/** `400`: the key breaks the key rules. Raised before any SQL runs. */
export class IdempotencyKeyInvalidError extends IdempotencyError {
  constructor(message: string) {
    super(IdempotencyErrorCode.KEY_INVALID, 400, message)
  }
}

/**
 * `422`: the key is bound to a different request. `firstSeenAt` tells when that was. The message
 * names neither key nor scope: it reaches responses and logs, and a scope may name the client.
 */
export class IdempotencyKeyMismatchError extends IdempotencyError {
  readonly firstSeenAt: Date

  constructor(firstSeenAt: Date) {
    super(IdempotencyErrorCode.KEY_MISMATCH, 422, 'The idempotency key was first used with a different request.')
    this.firstSeenAt = firstSeenAt
  }
}

/** `409`: a request with the same key is still running elsewhere. */
export class IdempotencyKeyInProgressError extends IdempotencyError {
  /** A suggested delay before retrying, in whole seconds (for a `Retry-After` header). */
  readonly retryAfterSeconds: number

  constructor(message: string, retryAfterSeconds: number, options: IdempotencyErrorOptions = {}) {
    super(IdempotencyErrorCode.KEY_IN_PROGRESS, 409, message, { ...options, retryable: true })
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** `409`: see {@link IdempotencyErrorCode.SNAPSHOT_CONFLICT}. Retry the whole transaction. */
export class IdempotencySnapshotConflictError extends IdempotencyError {
  readonly retryAfterSeconds = 0

  constructor(options: IdempotencyErrorOptions = {}) {
    super(
      IdempotencyErrorCode.SNAPSHOT_CONFLICT,
      409,
      'The idempotency key could not be claimed consistently with a concurrent transaction (REPEATABLE READ or SERIALIZABLE); retry the transaction.',
      { ...options, retryable: true },
    )
  }
}

/**
 * A value that must be JSON is not: a request (`400`), a handler's result (`422`: it can never be
 * stored, so a retry cannot help; most often it echoes the request, a NUL character say) or an event.
 */
export class IdempotencyJsonError extends IdempotencyError {
  /** Where in the value the problem is, as a JSON pointer-like path (`$.items[2].price`). */
  readonly path: string

  constructor(
    code: typeof IdempotencyErrorCode.REQUEST_INVALID | typeof IdempotencyErrorCode.RESULT_INVALID | typeof IdempotencyErrorCode.EVENT_INVALID,
    path: string,
    problem: string,
  ) {
    const what = { [IdempotencyErrorCode.REQUEST_INVALID]: 'request', [IdempotencyErrorCode.RESULT_INVALID]: 'result', [IdempotencyErrorCode.EVENT_INVALID]: 'event payload' }[code]
    super(code, code === IdempotencyErrorCode.REQUEST_INVALID ? 400 : code === IdempotencyErrorCode.RESULT_INVALID ? 422 : 500, `The ${what} is not storable JSON at ${path}: ${problem}.`)
    this.path = path
  }
}

/**
 * An HTTP request body the adapter cannot fingerprint: `413` (`IDEMPOTENCY_REQUEST_TOO_LARGE`)
 * past the route's `maxBodyBytes`, `400` (`IDEMPOTENCY_REQUEST_INVALID`) when a JSON body is not
 * UTF-8, not JSON, or nested deeper than `maxBodyDepth`.
 */
export class IdempotencyRequestBodyError extends IdempotencyError {
  constructor(code: typeof IdempotencyErrorCode.REQUEST_INVALID | typeof IdempotencyErrorCode.REQUEST_TOO_LARGE, message: string) {
    super(code, code === IdempotencyErrorCode.REQUEST_TOO_LARGE ? 413 : 400, message)
  }
}

/** `500`: the library was called wrongly (not in a transaction, invalid options). */
export class IdempotencyUsageError extends IdempotencyError {
  constructor(message: string) {
    super(IdempotencyErrorCode.USAGE, 500, message)
  }
}

/**
 * The database refused one of the library's own statements (`sqlState` names why, `cause` is the
 * driver's error). `503` when a retry may succeed (a lost connection, a timeout), else `500`.
 */
export class IdempotencyStoreError extends IdempotencyError {
  readonly sqlState: string | undefined

  constructor(
    code: typeof IdempotencyErrorCode.NOT_MIGRATED | typeof IdempotencyErrorCode.STORE_FAILED,
    message: string,
    sqlState: string | undefined,
    cause: unknown,
    retryable = false,
  ) {
    super(code, retryable ? 503 : 500, message, { cause, retryable })
    this.sqlState = sqlState
  }
}

/** `400`: a customer identifier breaks the rules, or looks like personal data. */
export class CustomerIdentifierError extends IdempotencyError {
  /** For personal data: which kind it looks like (`email`, `phone`, `us-ssn`, `uk-nino`, `date`, `payment-card`). */
  readonly kind: string | undefined

  constructor(message: string, kind?: string) {
    super(kind === undefined ? IdempotencyErrorCode.CUSTOMER_IDENTIFIER_INVALID : IdempotencyErrorCode.CUSTOMER_IDENTIFIER_PERSONAL_DATA, 400, message)
    this.kind = kind
  }
}

/** `400`: the request names its customer wrongly (both headers, or an id that is not a UUID). */
export class CustomerReferenceError extends IdempotencyError {
  constructor(message: string) {
    super(IdempotencyErrorCode.CUSTOMER_REFERENCE_INVALID, 400, message)
  }
}

/** `404`: no such customer for this client. */
export class CustomerNotFoundError extends IdempotencyError {
  constructor() {
    super(IdempotencyErrorCode.CUSTOMER_NOT_FOUND, 404, 'No customer of this client has that id or identifier.')
  }
}

/**
 * The customer is being deleted. `410 Gone` when a request acts on its behalf (it will never come
 * back); `409 Conflict` when a create names its identifier (taken until the deletion finishes).
 */
export class CustomerDeletingError extends IdempotencyError {
  readonly customerId: string

  constructor(customerId: string, httpStatus: 409 | 410 = 410) {
    super(IdempotencyErrorCode.CUSTOMER_DELETING, httpStatus, 'The customer is being deleted; its identifier is released once the deletion finishes.')
    this.customerId = customerId
  }
}
