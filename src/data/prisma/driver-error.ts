// Prisma wraps the driver's error: a raw query that PostgreSQL refused is a
// PrismaClientKnownRequestError with code P2010 and the driver adapter's error (whose `cause`
// holds the SQLSTATE) in `meta`. The library reads a SQLSTATE from `code`, and would read P2010
// as one, so the session hands it an error that carries the server's SQLSTATE (or the socket
// error) as `code` and Prisma's error as `cause`.

/** A statement of the library's that failed under Prisma: `code` is the SQLSTATE, `cause` Prisma's error. */
export class PrismaStatementError extends Error {
  /** PostgreSQL's SQLSTATE, a Node socket error code, or undefined (a Prisma error of its own, say P2028). */
  readonly code: string | undefined

  constructor(message: string, code: string | undefined, cause: unknown) {
    super(message, { cause })
    this.name = 'PrismaStatementError'
    this.code = code
  }
}

// What a driver adapter's error (DriverAdapterError's `cause`) says about the connection, as the
// Node socket error it was made from (see convertDriverError in @prisma/adapter-pg).
const SOCKET_CODE_OF_KIND: Readonly<Record<string, string>> = {
  ConnectionClosed: 'ECONNRESET',
  SocketTimeout: 'ETIMEDOUT',
  DatabaseNotReachable: 'ECONNREFUSED',
}

// Prisma's own codes that stand for a SQLSTATE or a lost connection when no driver error is inside
// (the query engine of Prisma 6 and the Accelerate / Prisma Postgres clients report these).
const CODE_OF_PRISMA_CODE: Readonly<Record<string, string>> = {
  /** Transaction failed due to a write conflict or a deadlock. */
  P2034: '40001',
  /** Server has closed the connection. */
  P1017: 'ECONNRESET',
  /** Can't reach database server. */
  P1001: 'ECONNREFUSED',
}

const SQLSTATE = /^[0-9A-Z]{5}$/
// P1000 and up; PL/pgSQL's own SQLSTATEs are P0001 to P0004.
const PRISMA_CODE = /^P[1-9]\d{3}$/

interface DriverErrorCause {
  kind?: unknown
  originalCode?: unknown
  code?: unknown
  originalMessage?: unknown
  message?: unknown
}

/**
 * `error` as the library's error translation reads it: a Prisma error becomes a
 * {@link PrismaStatementError} carrying the SQLSTATE it wraps; any other error (the driver's own,
 * a plain `Error` of node-postgres for a dead connection) passes through unchanged.
 */
export function fromPrismaError(error: unknown): unknown {
  if (error instanceof PrismaStatementError || typeof error !== 'object' || error === null) return error
  const candidate = error as { name?: unknown; code?: unknown; cause?: unknown; meta?: unknown; message?: unknown }
  const driverError = driverErrorCauseOf(candidate)
  const prismaCode = typeof candidate.code === 'string' && PRISMA_CODE.test(candidate.code) ? candidate.code : undefined
  if (driverError === undefined && prismaCode === undefined && !String(candidate.name).startsWith('PrismaClient')) return error
  const code = codeOfDriverError(driverError) ?? codeOfMeta(candidate.meta) ?? (prismaCode === undefined ? undefined : CODE_OF_PRISMA_CODE[prismaCode])
  const message = typeof driverError?.originalMessage === 'string' ? driverError.originalMessage : String(candidate.message).trim()
  return new PrismaStatementError(message, code, error)
}

// A DriverAdapterError itself (thrown by $transaction's BEGIN or COMMIT), or inside a Prisma error's meta.
function driverErrorCauseOf(error: { name?: unknown; cause?: unknown; meta?: unknown }): DriverErrorCause | undefined {
  const adapterError = error.name === 'DriverAdapterError' ? error : (error.meta as { driverAdapterError?: { cause?: unknown } } | undefined)?.driverAdapterError
  const cause = (adapterError as { cause?: unknown } | undefined)?.cause
  return typeof cause === 'object' && cause !== null ? (cause as DriverErrorCause) : undefined
}

function codeOfDriverError(cause: DriverErrorCause | undefined): string | undefined {
  if (cause === undefined) return undefined
  for (const code of [cause.originalCode, cause.code]) if (typeof code === 'string' && SQLSTATE.test(code)) return code
  return typeof cause.kind === 'string' ? SOCKET_CODE_OF_KIND[cause.kind] : undefined
}

// The query engine (Prisma 6 and earlier, Accelerate) puts the database's code in P2010's meta.
function codeOfMeta(meta: unknown): string | undefined {
  const code = (meta as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' && SQLSTATE.test(code) && /[0-9]/.test(code) && !PRISMA_CODE.test(code) ? code : undefined
}
