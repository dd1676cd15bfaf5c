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
  // A Content-Length among the lines given may promise more than is sent: the server must answer
  // without waiting for it.
  const length = headerLines.some((line) => /^content-length:/i.test(line)) ? [] : [`content-length: ${bytes.length}`]
  const head = [`${method} ${path} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close', ...length, ...headerLines].join('\r\n')
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    const finish = () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (error) {
        reject(error)
      }
      socket.destroy()
    }
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      if (isComplete(Buffer.concat(chunks))) finish()
    })
    socket.on('error', reject)
    socket.on('end', finish)
    socket.write(Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), bytes]))
  })
}

/** Whether `data` holds a whole response with a Content-Length (the server may keep the socket). */
function isComplete(data: Buffer): boolean {
  const split = data.indexOf('\r\n\r\n')
  if (split < 0) return false
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(data.subarray(0, split).toString('latin1'))
  return length !== null && data.length - split - 4 >= Number(length[1])
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
