// A TCP proxy in front of an HTTP server that loses responses the way a network does: it forwards
// the request, and when the server's first response bytes come back (so the handler has run and
// committed) it closes the client's connection instead of passing them on. The client sees a
// network error, never the response.
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

export interface ResponseDroppingProxy {
  url: string
  /** How many responses it has dropped so far. */
  readonly dropped: number
  close(): Promise<void>
}

/** Drops the first `drops` responses (one per connection), then passes everything through. */
export async function responseDroppingProxy(target: string, drops = 1): Promise<ResponseDroppingProxy> {
  const { hostname, port } = new URL(target)
  let dropped = 0
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {})
    }
    client.on('close', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.pipe(upstream)
    // The connection's fate is decided by its first response bytes.
    upstream.once('data', (first: Buffer) => {
      if (dropped < drops) {
        dropped++
        client.destroy()
        return
      }
      client.write(first)
      upstream.pipe(client)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get dropped() {
      return dropped
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
