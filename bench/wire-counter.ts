// Round trips and statements as they leave this process, whatever the driver: node-postgres (under
// kysely, Drizzle, Knex and Prisma's adapter) and postgres.js each write PostgreSQL's protocol to
// a net.Socket, so counting the messages written there sees every data layer alike, with nothing
// in the timed path but a scan of the bytes.
import net from 'node:net'
import type { Counter } from './measure.ts'

/** Counts since the wire was watched: `queries` is round trips (as measure.ts's Counter calls them). */
export interface WireCounts extends Counter {
  /** Statements executed: each Execute, and each simple Query (one statement each in these benchmarks). */
  statements: number
}

// Where a socket is in its stream of messages: the startup message has no type byte, every later
// one has a type byte and a length, and a message may be split across writes.
interface SocketState {
  started: boolean
  /** Bytes of the current message still to skip. */
  skip: number
  /** The start of a message header split across writes. */
  partial: Buffer | undefined
}

const SYNC = 0x53 // 'S': the server answers, then waits: one round trip ends
const QUERY = 0x51 // 'Q': a simple query, its own round trip and statement
const EXECUTE = 0x45 // 'E'
const SESSION_ENCRYPTION_REQUESTS = new Set([80877103, 80877104])

/**
 * Counts every socket's PostgreSQL messages from now on: a round trip for each Sync and simple
 * Query (each ends a message the server answers in full), a statement for each Execute and simple
 * Query. Only sockets opened after the call are counted, from their first byte; a socket that is
 * not PostgreSQL's (none in these benchmarks) would be miscounted.
 */
export function watchWire(): WireCounts {
  const counts: WireCounts = { queries: 0, statements: 0 }
  const states = new WeakMap<net.Socket, SocketState>()
  const write = net.Socket.prototype.write as (this: net.Socket, chunk: unknown, ...rest: unknown[]) => boolean
  net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (chunk instanceof Uint8Array) {
      let state = states.get(this)
      if (state === undefined) states.set(this, (state = { started: false, skip: 0, partial: undefined }))
      scan(state, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), counts)
    }
    return write.call(this, chunk, ...rest)
  } as typeof net.Socket.prototype.write
  return counts
}

function scan(state: SocketState, chunk: Buffer, counts: WireCounts): void {
  const bytes = state.partial === undefined ? chunk : Buffer.concat([state.partial, chunk])
  state.partial = undefined
  let at = Math.min(state.skip, bytes.length)
  state.skip -= at
  while (at < bytes.length) {
    // Untyped messages (an SSLRequest, the startup message) are a length, then a code or a version.
    const header = state.started ? 5 : 8
    if (bytes.length - at < header) {
      state.partial = bytes.subarray(at)
      return
    }
    let length: number
    if (state.started) {
      const type = bytes[at]!
      if (type === SYNC || type === QUERY) counts.queries++
      if (type === EXECUTE || type === QUERY) counts.statements++
      length = 1 + bytes.readInt32BE(at + 1)
    } else {
      length = bytes.readInt32BE(at)
      // The startup message is the last untyped one; an SSLRequest or GSSENCRequest comes before it.
      if (!SESSION_ENCRYPTION_REQUESTS.has(bytes.readInt32BE(at + 4))) state.started = true
    }
    const end = at + length
    if (end > bytes.length) {
      state.skip = end - bytes.length
      return
    }
    at = end
  }
}
