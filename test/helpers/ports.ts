import { createServer, type Server } from 'node:net'

/** Below Linux's ephemeral range (32768-60999): no outgoing connection can take one of these while a node is down. */
const LOW = 20_000
const HIGH = 32_000

async function tryListen (port: number): Promise<Server | undefined> {
  const server = createServer()
  return await new Promise(resolve => {
    server.once('error', () => { resolve(undefined) })
    server.listen(port, '127.0.0.1', () => { resolve(server) })
  })
}

/**
 * Ports free right now that stay free while a node restarts on them: a
 * port from the ephemeral range may be handed to some other test's
 * outgoing connection between a node's stop and its start (EADDRINUSE,
 * seen on a loaded machine). Held together while picked, so no two are
 * the same.
 */
export async function restartablePorts (n: number): Promise<number[]> {
  const held: Server[] = []
  const ports: number[] = []
  for (let tries = 0; ports.length < n && tries < 1000; tries++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW))
    if (ports.includes(port)) continue
    const server = await tryListen(port)
    if (server === undefined) continue
    held.push(server)
    ports.push(port)
  }
  await Promise.all(held.map(async s => await new Promise(resolve => s.close(resolve))))
  if (ports.length < n) throw new Error(`found only ${ports.length} of ${n} free ports between ${LOW} and ${HIGH}`)
  return ports
}
