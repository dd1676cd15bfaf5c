/** The PostgreSQL SQLSTATE codes the library reacts to, by name. */
export const SqlState = {
  UNIQUE_VIOLATION: '23505',
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK_DETECTED: '40P01',
  LOCK_NOT_AVAILABLE: '55P03',
  QUERY_CANCELED: '57014',
  FOREIGN_KEY_VIOLATION: '23503',
  UNDEFINED_TABLE: '42P01',
  UNDEFINED_FUNCTION: '42883',
  INVALID_SCHEMA_NAME: '3F000',
  /** A statement that needs a transaction block ran outside one (LOCK TABLE, SAVEPOINT). */
  NO_ACTIVE_SQL_TRANSACTION: '25P01',
  IN_FAILED_SQL_TRANSACTION: '25P02',
  INVALID_SQL_STATEMENT_NAME: '26000',
  FEATURE_NOT_SUPPORTED: '0A000',
  DIVISION_BY_ZERO: '22012',
  INSUFFICIENT_PRIVILEGE: '42501',
  /** The server ends the session: pg_terminate_backend, a fast shutdown. */
  ADMIN_SHUTDOWN: '57P01',
  CRASH_SHUTDOWN: '57P02',
  CANNOT_CONNECT_NOW: '57P03',
  IDLE_IN_TRANSACTION_SESSION_TIMEOUT: '25P03',
  IDLE_SESSION_TIMEOUT: '57P05',
  /** COMMIT's outcome is unknown: the connection went while it ran. */
  TRANSACTION_RESOLUTION_UNKNOWN: '08007',
} as const

/** SQLSTATE class 08, connection exception: every code in it means the connection is gone. */
export const CONNECTION_EXCEPTION_CLASS = '08'

/** The SQLSTATE of a driver error, if it has one. */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  // Every SQLSTATE has a digit; a Node error code such as 'EPIPE' has none.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && /[0-9]/.test(code) ? code : undefined
}
