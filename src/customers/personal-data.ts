import validator from 'validator'

/** The kinds of personal data an identifier must not look like. */
export type PersonalDataKind = 'email' | 'phone' | 'us-ssn' | 'uk-nino' | 'date' | 'payment-card'

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi
// Each pattern looks anywhere in the identifier (`user-1985-04-12` holds a date of birth); the
// number-like ones only at a run of letters and digits of their own, so random hex is not refused.
const EMAIL_LIKE = /[^\s@]+@[^\s@]+\.[^\s@]+/
const US_SSN = /(?<!\d)\d{3}[- ]\d{2}[- ]\d{4}(?!\d)/
// HMRC's format: two prefix letters (D, F, I, Q, U, V never; O never second), six digits, A-D.
// Standing alone, not inside a longer run of letters and digits (random hex often holds the shape).
const UK_NINO = /(?<![A-Z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Z0-9])/i
const DATES = [
  /(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)/, // 1985-04-12
  /(?<!\d)(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?!\d)/, // 12/04/1985, 04.12.1985
]
// E.164 (+ and 8 to 15 digits), or a national number with separators or a trunk 0.
const PHONE_CANDIDATE = /(?:\+|\b0)[\d ().-]{7,20}\d(?![A-Za-z0-9])|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b/
const CARD_CANDIDATE = /(?<![A-Za-z0-9])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9])/

/**
 * The kind of personal data `identifier` looks like, or undefined. Heuristics, tuned to refuse
 * what a well-meaning client might paste (an e-mail address, a phone number, a social security or
 * national insurance number, a date of birth, a card number that passes the Luhn check) rather
 * than to catch a determined one.
 */
export function personalDataKind(original: string): PersonalDataKind | undefined {
  // A UUID's digit groups can look like a phone or card number; a UUID is the opaque reference
  // we ask for, so it is taken out before looking.
  const identifier = original.replace(UUID, '_')
  const match = EMAIL_LIKE.exec(identifier)
  if (match && validator.isEmail(match[0], { allow_utf8_local_part: true })) return 'email'
  if (US_SSN.test(identifier)) return 'us-ssn'
  if (UK_NINO.test(identifier)) return 'uk-nino'
  if (DATES.some((pattern) => isCalendarDate(pattern.exec(identifier), pattern === DATES[0]))) return 'date'
  const card = CARD_CANDIDATE.exec(identifier)?.[0]
  if (card && validator.isCreditCard(card.replace(/[ -]/g, ''))) return 'payment-card'
  const phone = PHONE_CANDIDATE.exec(identifier)?.[0]
  if (phone && isPhoneNumber(phone)) return 'phone'
  return undefined
}

function isCalendarDate(match: RegExpExecArray | null, yearFirst: boolean): boolean {
  if (!match) return false
  const [a, b, c] = [Number(match[1]), Number(match[2]), Number(match[3])]
  const year = yearFirst ? a : c
  // Day-first and month-first are both common; either reading that is a real date counts.
  const readings = yearFirst ? [[b, c]] : [[b, a], [a, b]]
  return year >= 1900 && year <= 2100 && readings.some(([month, day]) => isValidDay(year, month!, day!))
}

function isValidDay(year: number, month: number, day: number): boolean {
  const date = new Date(Date.UTC(year, month - 1, day))
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
}

function isPhoneNumber(candidate: string): boolean {
  const compact = candidate.replace(/[ ().-]/g, '')
  return (
    /^\+\d{8,15}$/.test(compact) || // E.164: +44 7700 900123
    /^0\d{9,10}$/.test(compact) || // a national number with its trunk 0: 07700 900123
    /^\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}$/.test(candidate) // North American, formatted: (555) 010-1234
  )
}
