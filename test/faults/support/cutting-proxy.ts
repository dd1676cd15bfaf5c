// A TCP proxy in front of PostgreSQL that can lose the server's answer to a COMMIT: the server
// has committed, the client only sees its connection drop. That is the one fault whose outcome
// the client cannot know, and the one an idempotency key exists for.
import { createServer, connect as connectTcp, type AddressInfo, type Socket } from 'node:net'

export interface CuttingProxy {
  /** `targetUrl` with the proxy's host and port. */
  url: string
  /**
   * Arms the proxy: the next CommandComplete "COMMIT" any connection receives is dropped with
   * the connection. Resolves once that happened.
   */
  cutNextCommitReply(): Promise<void>
  close(): Promise<void>
}

export async function startCuttingProxy(targetUrl: string): Promise<CuttingProxy> {
  const target = new URL(targetUrl)
  let armed: (() => void) | undefined
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connectTcp(Number(target.port || 5432), target.hostname)
    sockets.add(client).add(upstream)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    // Server to client, message by message (a type byte, then a length that counts itself).
    let pending = Buffer.alloc(0)
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      let offset = 0
      while (pending.length - offset >= 5) {
        const length = pending.readInt32BE(offset + 1)
        if (pending.length - offset < 1 + length) break
        const type = String.fromCharCode(pending[offset]!)
        if (armed && type === 'C' && pending.toString('utf8', offset + 5, offset + length).replace(/\0$/, '') === 'COMMIT') {
          client.write(pending.subarray(0, offset))
          const cut = armed
          armed = undefined
          end()
          cut()
          return
        }
        offset += 1 + length
      }
      client.write(pending.subarray(0, offset))
      pending = pending.subarray(offset)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const proxied = new URL(targetUrl)
  proxied.hostname = '127.0.0.1'
  proxied.port = String((server.address() as AddressInfo).port)
  return {
    url: proxied.toString(),
    cutNextCommitReply: () => new Promise<void>((resolve) => (armed = resolve)),
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
