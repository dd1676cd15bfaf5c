import { fill, type ExpectedStatus, type Expectation, type Vars } from './corpus.ts'
import type { RawOutcome } from './raw-http.ts'

// A driver message or SQLSTATE in a body tells an attacker about the schema; no answer has one.
const DRIVER_MESSAGE = /SQLSTATE|sqlState|invalid input syntax|violates (?:check|foreign key|not-null|unique) constraint|relation "|syntax error at or near|invalid byte sequence/i

export function statuses(expect: Expectation): ExpectedStatus[] {
  return Array.isArray(expect.status) ? expect.status : [expect.status]
}

export function headerOf(outcome: RawOutcome, name: string): string | undefined {
  return outcome.kind === 'response' ? outcome.headers.find(([n]) => n === name)?.[1] : undefined
}

export function jsonOf(outcome: RawOutcome): unknown {
  if (outcome.kind !== 'response') return undefined
  try {
    return JSON.parse(outcome.body.toString('utf8'))
  } catch {
    return undefined
  }
}

const anyOf = (value: string | string[]) => (Array.isArray(value) ? value : [value])

/** What is wrong with one response, against its expectation and the rules every response keeps. */
export function problemsWith(outcome: RawOutcome, expect: Expectation | undefined, vars: Vars, markers: string[]): string[] {
  if (outcome.kind === 'timeout') return [`no response within the hang guard (${outcome.ms} ms)`]
  const found: string[] = []
  const status = outcome.kind === 'closed' ? 'closed' : outcome.status
  if (typeof status === 'number' && status >= 500) found.push(`answered ${status}`)
  const body = outcome.kind === 'response' ? outcome.body.toString('utf8') : ''
  const leaked = markers.filter((marker) => body.includes(marker) || (outcome.kind === 'response' && outcome.headers.some(([, v]) => v.includes(marker))))
  if (leaked.length > 0) found.push(`leaked another client's or customer's data (${leaked.length} marker${leaked.length > 1 ? 's' : ''})`)
  if (DRIVER_MESSAGE.test(body)) found.push('a driver message in the body')
  if (!expect) return found
  const wanted = statuses(expect)
  if (!wanted.includes(status)) found.push(`status ${status}, expected ${wanted.join(' or ')}`)
  if (outcome.kind !== 'response' || !wanted.includes(status)) return found
  const contentType = headerOf(outcome, 'content-type') ?? ''
  const isProblem = /^application\/problem\+json/i.test(contentType)
  const problem = jsonOf(outcome) as { type?: string; code?: string } | undefined
  if ((expect.problem || expect.type || expect.code) && outcome.status >= 400 && !isProblem) found.push(`not problem+json (${contentType || 'no content-type'})`)
  if (expect.type && !anyOf(expect.type).some((type) => problem?.type?.endsWith(`/${type}`))) found.push(`problem type ${problem?.type ?? 'none'}, expected ${anyOf(expect.type).join(' or ')}`)
  if (expect.code && !anyOf(expect.code).includes(problem?.code ?? '')) found.push(`code ${problem?.code ?? 'none'}, expected ${anyOf(expect.code).join(' or ')}`)
  if (expect.notType && problem?.type?.endsWith(`/${expect.notType}`)) found.push(`problem type ${expect.notType}`)
  const replayed = headerOf(outcome, 'idempotent-replayed') === 'true'
  if (expect.replayed !== undefined && replayed !== expect.replayed) found.push(expect.replayed ? 'not replayed' : 'replayed')
  for (const name of expect.headersAbsent ?? []) if (headerOf(outcome, name.toLowerCase()) !== undefined) found.push(`header ${name} present`)
  if (expect.bodyMatches && !new RegExp(expect.bodyMatches).test(body)) found.push(`body does not match /${expect.bodyMatches}/`)
  for (const text of expect.bodyNotContains ?? []) if (body.includes(fill(text, vars))) found.push(`body contains ${text}`)
  return found
}
