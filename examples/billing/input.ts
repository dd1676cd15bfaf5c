// What the routes take, checked before any SQL runs: each function returns the value, or the
// sentence that says what is wrong (a 400 `REQUEST_INVALID`). Amounts are whole minor units.
export const MAX_AMOUNT = 100_000_000_000

export interface NewInvoice {
  customer: string
  currency: string
  amountDue: number
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// PostgreSQL's text holds no NUL; a customer reference has no control characters at all.
const CUSTOMER = /^[^\u0000-\u001f\u007f-\u009f]{1,200}$/u

export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value)

const isAmount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= MAX_AMOUNT
const AMOUNT_RULE = `a whole number of minor units from 1 to ${MAX_AMOUNT}`

function jsonObject(body: unknown): Record<string, unknown> | string {
  // Without a JSON content type the body is unparsed (undefined, or the adapter's Buffer).
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Buffer.isBuffer(body)) return 'Send a JSON object with Content-Type: application/json.'
  return body as Record<string, unknown>
}

export function readNewInvoice(body: unknown): NewInvoice | string {
  const fields = jsonObject(body)
  if (typeof fields === 'string') return fields
  const { customer, currency, amountDue } = fields
  if (typeof customer !== 'string' || !CUSTOMER.test(customer) || !customer.isWellFormed()) return '`customer` must be 1 to 200 characters with no control characters.'
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) return '`currency` must be an ISO 4217 code in capitals, such as EUR.'
  if (!isAmount(amountDue)) return `\`amountDue\` must be ${AMOUNT_RULE}.`
  return { customer, currency, amountDue }
}

export function readPaymentAmount(body: unknown): number | string {
  const fields = jsonObject(body)
  if (typeof fields === 'string') return fields
  return isAmount(fields.amount) ? fields.amount : `\`amount\` must be ${AMOUNT_RULE}.`
}
