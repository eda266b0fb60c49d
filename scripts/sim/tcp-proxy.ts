import { createServer, connect, type Server, type Socket } from 'node:net'
import type { LinkFaults } from './network.ts'
import type { Prng } from './prng.ts'

export interface ProxyStats {
  accepted: number
  refused: number
  dropped: number
  bytes: number
}

const HIGH_WATER = 1024 * 1024
const LOW_WATER = 256 * 1024
const SLICE = 16 * 1024
const DROP_TICK_MS = 250

/**
 * One direction of one connection: chunks wait out the link's delay and
 * throttle in order, and the source is paused while too much is queued, so
 * a slow link slows the sender instead of buffering without bound.
 */
class Pump {
  readonly #from: Socket
  readonly #to: Socket
  readonly #faults: () => LinkFaults
  readonly #count: (n: number) => void
  readonly #queue: Array<{ chunk: Buffer, due: number }> = []
  #queued = 0
  #nextFreeAt = 0
  #timer: NodeJS.Timeout | undefined
  #waitingDrain = false
  #ended = false

  constructor (from: Socket, to: Socket, faults: () => LinkFaults, count: (n: number) => void) {
    this.#from = from
    this.#to = to
    this.#faults = faults
    this.#count = count
    from.on('data', (chunk: Buffer) => { this.#push(chunk) })
    from.on('end', () => { this.#ended = true; this.#run() })
  }

  #push (chunk: Buffer): void {
    const due = Date.now() + (this.#faults().delayMs ?? 0)
    for (let at = 0; at < chunk.length; at += SLICE) {
      const part = chunk.subarray(at, at + SLICE)
      this.#queue.push({ chunk: part, due })
      this.#queued += part.length
    }
    if (this.#queued > HIGH_WATER) this.#from.pause()
    this.#run()
  }

  #run (): void {
    if (this.#timer !== undefined || this.#waitingDrain || this.#to.destroyed) return
    while (this.#queue.length > 0) {
      const now = Date.now()
      const head = this.#queue[0] as { chunk: Buffer, due: number }
      const wait = Math.max(head.due, this.#nextFreeAt) - now
      if (wait > 0) {
        this.#timer = setTimeout(() => { this.#timer = undefined; this.#run() }, wait)
        return
      }
      this.#queue.shift()
      this.#queued -= head.chunk.length
      const bps = this.#faults().throttleBps
      if (bps !== undefined && bps > 0) this.#nextFreeAt = Math.max(now, this.#nextFreeAt) + head.chunk.length * 1000 / bps
      this.#count(head.chunk.length)
      if (this.#queued < LOW_WATER && this.#from.isPaused()) this.#from.resume()
      if (!this.#to.write(head.chunk)) {
        this.#waitingDrain = true
        this.#to.once('drain', () => { this.#waitingDrain = false; this.#run() })
        return
      }
    }
    if (this.#ended) this.#to.end()
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue.length = 0
  }
}

/**
 * A fault-injecting TCP relay for one directed link (node i dialling node
 * j). Unprivileged: every fault is done in user space on 127.0.0.1.
 *
 * - cut: destroys live connections and refuses new ones until heal;
 * - drop: destroys live connections at random (a probability per second);
 * - delay: holds every chunk for a fixed time, order kept;
 * - throttle: caps bytes per second per connection and direction.
 */
export class FaultyProxy {
  readonly #server: Server
  readonly #conns = new Set<{ client: Socket, upstream: Socket, pumps: Pump[] }>()
  readonly #rng: Prng
  readonly #dropTimer: NodeJS.Timeout
  #cut = false
  #faults: LinkFaults = {}
  readonly stats: ProxyStats = { accepted: 0, refused: 0, dropped: 0, bytes: 0 }
  port = 0
  readonly label: string

  private constructor (label: string, targetPort: number, targetHost: string, rng: Prng) {
    this.label = label
    this.#rng = rng
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, client => {
      if (this.#cut) {
        this.stats.refused += 1
        client.destroy()
        return
      }
      this.stats.accepted += 1
      const upstream = connect({ port: targetPort, host: targetHost, allowHalfOpen: true, noDelay: true })
      const faults = (): LinkFaults => this.#faults
      const count = (n: number): void => { this.stats.bytes += n }
      const conn = { client, upstream, pumps: [new Pump(client, upstream, faults, count), new Pump(upstream, client, faults, count)] }
      this.#conns.add(conn)
      const close = (): void => {
        if (!this.#conns.delete(conn)) return
        for (const p of conn.pumps) p.stop()
        client.destroy()
        upstream.destroy()
      }
      for (const s of [client, upstream]) {
        s.on('error', close)
        s.on('close', close)
      }
    })
    this.#server.on('error', () => {})
    this.#dropTimer = setInterval(() => { this.#dropTick() }, DROP_TICK_MS)
    this.#dropTimer.unref()
  }

  static async start (label: string, targetPort: number, rng: Prng, targetHost = '127.0.0.1'): Promise<FaultyProxy> {
    const proxy = new FaultyProxy(label, targetPort, targetHost, rng)
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject)
      proxy.#server.listen(0, '127.0.0.1', () => { resolve() })
    })
    const address = proxy.#server.address()
    proxy.port = typeof address === 'object' && address !== null ? address.port : 0
    return proxy
  }

  get isCut (): boolean { return this.#cut }
  get faults (): LinkFaults { return { ...this.#faults } }
  get liveConnections (): number { return this.#conns.size }

  cut (): void {
    this.#cut = true
    this.#destroyAll()
  }

  heal (): void {
    this.#cut = false
  }

  setFaults (faults: LinkFaults): void {
    this.#faults = { ...faults }
  }

  clearFaults (): void {
    this.#faults = {}
  }

  async close (): Promise<void> {
    clearInterval(this.#dropTimer)
    this.#cut = true
    this.#destroyAll()
    await new Promise<void>(resolve => this.#server.close(() => { resolve() }))
  }

  #destroyAll (): void {
    for (const conn of [...this.#conns]) {
      conn.client.destroy()
      conn.upstream.destroy()
    }
  }

  #dropTick (): void {
    const p = this.#faults.dropPerSec ?? 0
    if (p <= 0) return
    for (const conn of [...this.#conns]) {
      if (this.#rng.chance(p * DROP_TICK_MS / 1000)) {
        this.stats.dropped += 1
        conn.client.destroy()
        conn.upstream.destroy()
      }
    }
  }
}
