import { createServer, type Server } from 'node:http'
import { DwError } from '../errors.ts'

export interface Exposition { contentType: string, text: () => Promise<string> }

/**
 * `/metrics` on an address of its own, without authentication, for a
 * Prometheus on this host or a private network (`metrics.listen`). Plain
 * node:http rather than a second Fastify: it answers one path and nothing
 * else, so there is no other route, parser or hook to expose.
 */
export async function listenForScrapes (address: { host: string, port: number }, metrics: Exposition): Promise<{ url: string, close: () => Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: this address serves /metrics only\n')
      return
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET /metrics\n')
      return
    }
    metrics.text().then(
      text => { response.writeHead(200, { 'content-type': metrics.contentType }).end(request.method === 'HEAD' ? undefined : text) },
      (err: unknown) => { response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`) }
    )
  })
  // A scraper that connects and sends nothing is dropped, as on the API.
  server.headersTimeout = 30_000
  server.requestTimeout = 60_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new DwError('CONFIG_INVALID', `cannot serve metrics on ${address.host}:${address.port} (config.json "metrics.listen"): ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`, { cause: err }))
    })
    server.listen(address.port, address.host, () => { resolve() })
  })
  const bound = server.address()
  const port = typeof bound === 'object' && bound !== null ? bound.port : address.port
  const host = address.host.includes(':') ? `[${address.host}]` : address.host
  return {
    url: `http://${host}:${port}/metrics`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
  }
}
