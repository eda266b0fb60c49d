import { createServer, connect, type Server, type Socket } from 'node:net'

/**
 * A TCP relay standing in for the link between two sites: `cut()` drops
 * every connection through it and refuses new ones until `heal()`. Tests
 * point a node's peer-book address at the proxy instead of at the peer, so a
 * partition is deterministic and needs no privileges.
 */
export class TcpProxy {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #cut = false
  port = 0

  private constructor (targetPort: number, targetHost: string) {
    this.#server = createServer(client => {
      if (this.#cut) { client.destroy(); return }
      const upstream = connect(targetPort, targetHost)
      for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
        this.#sockets.add(a)
        a.on('error', () => { b.destroy() })
        a.on('close', () => { this.#sockets.delete(a); b.destroy() })
        a.pipe(b)
      }
    })
  }

  static async start (targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost)
    await new Promise<void>(resolve => proxy.#server.listen(0, '127.0.0.1', resolve))
    const address = proxy.#server.address()
    proxy.port = typeof address === 'object' && address !== null ? address.port : 0
    return proxy
  }

  cut (): void {
    this.#cut = true
    for (const socket of this.#sockets) socket.destroy()
  }

  heal (): void {
    this.#cut = false
  }

  async close (): Promise<void> {
    this.cut()
    await new Promise<void>(resolve => this.#server.close(() => { resolve() }))
  }
}
