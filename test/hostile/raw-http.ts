import { connect } from 'node:net'

/** What came back on the socket: a parsed response, a connection closed without one, or nothing in time. */
export type RawOutcome =
  | { kind: 'response'; status: number; headers: [string, string][]; body: Buffer; ms: number }
  | { kind: 'closed'; ms: number }
  | { kind: 'timeout'; ms: number }

/**
 * Sends `bytes` as they are on a fresh TCP connection (node:net, so nothing normalizes the
 * request: duplicate headers, odd casing, bad framing and raw bytes reach the server as written)
 * and reads one HTTP/1.1 response. `timeoutMs` is a hang guard, not a performance threshold.
 */
export function sendRaw(port: number, bytes: Buffer, timeoutMs: number, halfClose = false): Promise<RawOutcome> {
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let received = Buffer.alloc(0)
    let settled = false
    const finish = (outcome: RawOutcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => finish({ kind: 'timeout', ms: elapsed() }), timeoutMs)
    const tryParse = (ended: boolean) => {
      const parsed = parseResponse(received, ended)
      if (parsed) finish({ kind: 'response', ...parsed, ms: elapsed() })
      else if (ended) finish({ kind: 'closed', ms: elapsed() })
    }
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk])
      tryParse(false)
    })
    socket.on('end', () => tryParse(true))
    // A server that answers early (413) and closes makes our write fail: what it sent still counts.
    socket.on('error', () => tryParse(true))
    socket.on('close', () => tryParse(true))
    // Half-closing says "that is all": a server waiting for a promised body then sees its end.
    if (halfClose) socket.end(bytes)
    else socket.write(bytes)
  })
}

/** One response from the start of `data`, or undefined while it is incomplete. */
function parseResponse(data: Buffer, ended: boolean): { status: number; headers: [string, string][]; body: Buffer } | undefined {
  // Skip interim responses (100 Continue): the final one is the answer.
  while (/^HTTP\/1\.[01] 1\d\d /.test(data.subarray(0, 13).toString('latin1'))) {
    const end = data.indexOf('\r\n\r\n')
    if (end < 0) return undefined
    data = data.subarray(end + 4)
  }
  const headEnd = data.indexOf('\r\n\r\n')
  if (headEnd < 0) return undefined
  const lines = data.subarray(0, headEnd).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1])
  if (!Number.isInteger(status)) return undefined
  const headers = lines.slice(1).map((line): [string, string] => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
  })
  const rest = data.subarray(headEnd + 4)
  const header = (name: string) => headers.find(([n]) => n === name)?.[1]
  if (/chunked/i.test(header('transfer-encoding') ?? '')) {
    const body = dechunk(rest)
    return body ? { status, headers, body } : ended ? { status, headers, body: rest } : undefined
  }
  const length = header('content-length')
  if (length !== undefined) {
    const n = Number(length)
    if (rest.length >= n) return { status, headers, body: rest.subarray(0, n) }
    return ended ? { status, headers, body: rest } : undefined
  }
  // 1xx-less responses without a length end with the connection (or carry no body: 204, 304, HEAD).
  if (status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) }
  return ended ? { status, headers, body: rest } : undefined
}

function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    if (lineEnd < 0) return undefined
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (!Number.isFinite(size)) return undefined
    if (size === 0) return Buffer.concat(parts)
    if (data.length < lineEnd + 2 + size + 2) return undefined
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}
