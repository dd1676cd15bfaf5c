import { CONNECTION_EXCEPTION_CLASS, SqlState, sqlStateOf } from './sql-state.ts'

// The session ended on the server's side: its transaction is gone, a new connection may succeed.
const SESSION_ENDED: ReadonlySet<string> = new Set([
  SqlState.ADMIN_SHUTDOWN,
  SqlState.CRASH_SHUTDOWN,
  SqlState.CANNOT_CONNECT_NOW,
  SqlState.IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
  SqlState.IDLE_SESSION_TIMEOUT,
])

// Socket errors Node reports by `code` when the server or the network drops the connection.
// postgres.js reports its own with codes of its own (CONNECTION_CLOSED: the socket closed mid-query).
const SOCKET_ERRORS: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
])

// node-postgres reports a dead connection with a plain Error and no code: these are its messages
// (pg/lib/client.js), the only way to tell them apart.
const DRIVER_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Query read timeout',
]

/**
 * Whether `error` says the connection to the server was lost (or the server ended the session).
 * The transaction on it is gone (or, at COMMIT, its outcome unknown); with an idempotency key
 * the same request can simply be sent again.
 */
export function isConnectionLost(error: unknown): boolean {
  const sqlState = sqlStateOf(error)
  if (sqlState !== undefined) return sqlState.startsWith(CONNECTION_EXCEPTION_CLASS) || SESSION_ENDED.has(sqlState)
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && SOCKET_ERRORS.has(code)) return true
  const message = error instanceof Error ? error.message : ''
  // Anywhere in the message: Knex puts the failed SQL in front of the driver's own text.
  return DRIVER_MESSAGES.some((known) => message.includes(known))
}
