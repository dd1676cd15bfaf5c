import type { HttpResponse } from './types.ts'

/**
 * The bytes of a response body: JSON text for JSON media types (so a replay is byte-identical
 * to the first response), the string itself for other text, nothing for no body.
 */
export function serializeBody(response: HttpResponse): string | undefined {
  if (response.body === undefined) return undefined
  const type = response.headers['content-type'] ?? ''
  if (typeof response.body === 'string' && !/[/+]json\b/i.test(type)) return response.body
  return JSON.stringify(response.body)
}
