import { CustomerIdentifierError } from '../errors.ts'
import { checkOpaqueText } from '../key.ts'
import { dateOf } from '../store/database-time.ts'
import { personalDataKind } from './personal-data.ts'

/** A customer, as every customer function returns it. */
export interface Customer {
  customerId: string
  clientId: string
  idempotentIdentifier: string
  context: CustomerContext
  status: 'active' | 'deleting'
  createdAt: Date
}

/** Who the customer is, as given at creation; a repeat create does not change it. */
export interface CustomerContext {
  type?: string
  region?: string
  locale?: string
}

/**
 * A customer row as the library selects it: text only (see `CUSTOMER_COLUMNS`), decoded by
 * {@link toCustomer}. Its names are single lower-case words, which no column-name transform of an
 * app's data layer (postgres.js `postgres.camel`, Knex `postProcessResponse`) changes.
 */
export interface CustomerRow {
  customerid: string
  clientid: string
  identifier: string
  type: string | null
  region: string | null
  locale: string | null
  status: 'active' | 'deleting'
  /** Milliseconds since the epoch. */
  created: string
}

export function toCustomer(row: CustomerRow): Customer {
  const context: CustomerContext = {}
  if (row.type !== null) context.type = row.type
  if (row.region !== null) context.region = row.region
  if (row.locale !== null) context.locale = row.locale
  return {
    customerId: row.customerid,
    clientId: row.clientid,
    idempotentIdentifier: row.identifier,
    context,
    status: row.status,
    createdAt: dateOf(row.created),
  }
}

export interface IdentifierRules {
  /** Accept identifiers that look like personal data. Default `false`; set per client. */
  allowPersonalData?: boolean
}

const invalid = (message: string) => new CustomerIdentifierError(message)

/**
 * An identifier appears in paths and headers, so it must be an opaque reference: the key rules
 * (1 to 255 characters, no control characters) and, unless the client opted out, nothing that
 * looks like an e-mail address, a phone number, a social security or national insurance number,
 * a date, or a payment card number.
 */
export function validateIdentifier(identifier: unknown, rules: IdentifierRules = {}): string {
  const valid = checkOpaqueText('customer idempotent_identifier', identifier, 255, invalid)
  if (!rules.allowPersonalData) {
    const kind = personalDataKind(valid)
    if (kind !== undefined) {
      throw new CustomerIdentifierError(`The customer idempotent_identifier looks like personal data (${kind}); use an opaque reference.`, kind)
    }
  }
  return valid
}

/** The context's fields follow the key rules too: text of 1 to 64 characters (35 for a locale, BCP 47's longest). */
export function validateContext(context: unknown): CustomerContext {
  if (context === undefined) return {}
  if (typeof context !== 'object' || context === null || Array.isArray(context)) throw new CustomerIdentifierError('The customer context must be an object.')
  const { type, region, locale } = context as Record<string, unknown>
  const valid: CustomerContext = {}
  if (type !== undefined) valid.type = checkOpaqueText('customer context type', type, 64, invalid)
  if (region !== undefined) valid.region = checkOpaqueText('customer context region', region, 64, invalid)
  if (locale !== undefined) valid.locale = checkOpaqueText('customer context locale', locale, 35, invalid)
  return valid
}

export function validateClientId(clientId: unknown): string {
  return checkOpaqueText('client id', clientId, 255, invalid)
}
