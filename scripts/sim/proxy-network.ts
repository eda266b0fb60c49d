import { createServer } from 'node:net'
import type { LinkFaults, Network, ProxyNetworkStats } from './network.ts'
import type { Prng } from './prng.ts'
import { FaultyProxy } from './tcp-proxy.ts'

/** Picks distinct free TCP ports on 127.0.0.1 (held open together, then released). */
async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => {
    const server = createServer()
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => { resolve() }) })
    return server
  }))
  const ports = servers.map(s => (s.address() as { port: number }).port)
  await Promise.all(servers.map(async s => { await new Promise<void>(resolve => s.close(() => { resolve() })) }))
  return ports
}

/**
 * The unprivileged network: every node on 127.0.0.1, and node i dials node
 * j at proxy(i→j), so every byte between two nodes passes a proxy the
 * nemesis controls. Only one libp2p connection is kept per pair, through
 * whichever proxy the dialler used, so a cut pair cuts both proxies.
 */
export class ProxyNetwork implements Network {
  readonly mode = 'proxy'
  /** #proxies[i][j]: the link node i uses to dial node j (undefined on the diagonal). */
  readonly #proxies: Array<Array<FaultyProxy | undefined>> = []
  #ports: number[] = []
  readonly #rng: Prng

  constructor (rng: Prng) {
    this.#rng = rng
  }

  async setUp (n: number): Promise<void> {
    this.#ports = await freePorts(n)
    for (let i = 0; i < n; i++) {
      const row: Array<FaultyProxy | undefined> = []
      this.#proxies.push(row)
      for (let j = 0; j < n; j++) {
        row.push(i === j ? undefined : await FaultyProxy.start(`${i}->${j}`, this.#ports[j] as number, this.#rng.fork(`proxy ${i}->${j}`)))
      }
    }
  }

  httpAddress (): string { return '127.0.0.1:0' }
  listenAddress (i: number): string { return `/ip4/127.0.0.1/tcp/${this.#ports[i] as number}` }
  commandPrefix (): string[] { return [] }

  dialAddress (i: number, j: number): string {
    const proxy = this.#proxies[i]?.[j]
    if (proxy === undefined) throw new Error(`no link ${i}->${j}`)
    return `/ip4/127.0.0.1/tcp/${proxy.port}`
  }

  /** Cutting a proxy destroys its live connections and refuses new ones until heal. */
  async setTopology (connected: (i: number, j: number) => boolean): Promise<void> {
    this.#each((proxy, i, j) => {
      if (connected(i, j) && connected(j, i)) proxy.heal()
      else if (!proxy.isCut) proxy.cut()
    })
  }

  async setLinkFaults (i: number, j: number, faults: LinkFaults): Promise<void> {
    this.#proxies[i]?.[j]?.setFaults(faults)
  }

  realises (): string { return '' }

  async clearFaults (): Promise<void> {
    this.#each(proxy => { proxy.clearFaults() })
  }

  async stats (): Promise<ProxyNetworkStats> {
    const total: ProxyNetworkStats = { mode: 'proxy', accepted: 0, refused: 0, dropped: 0, bytes: 0 }
    this.#each(proxy => {
      total.accepted += proxy.stats.accepted
      total.refused += proxy.stats.refused
      total.dropped += proxy.stats.dropped
      total.bytes += proxy.stats.bytes
    })
    return total
  }

  async close (): Promise<void> {
    await Promise.all(this.#proxies.flat().map(async p => { await p?.close() }))
  }

  /** The proxies live in this process and die with it. */
  destroyNow (): void {}

  #each (fn: (proxy: FaultyProxy, i: number, j: number) => void): void {
    this.#proxies.forEach((row, i) => { row.forEach((proxy, j) => { if (proxy !== undefined) fn(proxy, i, j) }) })
  }
}
