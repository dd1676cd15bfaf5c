import { connect } from 'node:net'

/** A response read off the socket, headers by lower-case name (repeated ones joined by `, `). */
export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Sends one request as the exact bytes given, over a plain socket: no client merges repeated
 * header lines, normalizes a value or re-encodes the body, as fetch would.
 */
export function rawRequest(url: string, method: string, path: string, headerLines: string[], body: Buffer | string = ''): Promise<RawResponse> {
  const { hostname, port } = new URL(url)
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  const head = [`${method} ${path} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close', `content-length: ${bytes.length}`, ...headerLines].join('\r\n')
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (error) {
        reject(error)
      }
    })
    socket.write(Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), bytes]))
  })
}

function parseResponse(data: Buffer): RawResponse {
  const split = data.indexOf('\r\n\r\n')
  if (split < 0) throw new Error(`no complete response head in ${JSON.stringify(data.toString('latin1'))}`)
  const [statusLine, ...lines] = data.subarray(0, split).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  let body = data.subarray(split + 4)
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = unchunk(body)
  return { status: Number(statusLine!.split(' ')[1]), headers, body: body.toString('utf8') }
}

function unchunk(data: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (!(size > 0)) return Buffer.concat(parts)
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}
