import type { PrivateKey } from '@libp2p/interface'
import { DwError } from '../errors.ts'
import { sleep } from '../abortable.ts'
import type { Startable } from '../lifecycle.ts'
import { FIRST_MESSAGE_MS, readFirst, type MessageStream } from '../message-stream.ts'
import type { FramedStream } from '../peer/framed-stream.ts'
import type { ProtocolSpec } from '../peer/protocol-host.ts'
import { MAX_STATUS_BYTES, signStatus, StatusRefusal, type StatusBody } from './status-record.ts'
import type { HeldStatus, StatusBook } from './status-book.ts'

/**
 * `/dw/status/1.0.0`: node statuses pushed from peer to peer. The pusher
 * opens a stream, sends `{statuses: [[bytes, sig], ...]}` messages and
 * closes it; the receiver answers nothing. Each side remembers, per
 * connection, the newest status of each origin it has sent the peer, so a
 * status crosses each link once (docs/sync-protocol.md, "Node status").
 */
export const STATUS_PROTOCOL = '/dw/status/1.0.0'
/** Statuses in one message. */
export const STATUSES_PER_MESSAGE = 32
/** One message: a full batch of the largest statuses, with room for framing. */
export const MAX_STATUS_MESSAGE = STATUSES_PER_MESSAGE * (MAX_STATUS_BYTES + 128) + 1024
/** Statuses one inbound stream may carry; a mesh's roster is far smaller. */
export const MAX_STATUSES_PER_STREAM = 4096
/** After a peer connects or leaves, this node's status goes out again this soon (one for a burst). */
const SIGNIFICANT_DELAY_MS = 2000
/** A status taken from a peer goes on to the other peers this soon (one push for a burst). */
const RELAY_DELAY_MS = 250
/** Own statuses are made at most this often. */
const MIN_PUBLISH_GAP_MS = 1000

function invalid (message: string): DwError {
  return new DwError('INVALID_MESSAGE', message)
}

/** The statuses in one message from a peer, or INVALID_MESSAGE (the protocol host audits it and resets the stream). */
export function statusesOf (message: unknown): unknown[] {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) throw invalid('a status message must be a map')
  const items = (message as { statuses?: unknown }).statuses
  if (!Array.isArray(items) || items.length > STATUSES_PER_MESSAGE) throw invalid(`a status message carries a list of at most ${STATUSES_PER_MESSAGE} statuses`)
  return items
}

/** Reads every status a peer pushes on one stream and hands each to `receive`. */
export async function serveStatuses (stream: MessageStream, receive: (item: unknown) => Promise<void>): Promise<void> {
  let seen = 0
  while (true) {
    const next = await readFirst(stream, FIRST_MESSAGE_MS)
    if (next.done === true) break
    const items = statusesOf(next.value)
    seen += items.length
    if (seen > MAX_STATUSES_PER_STREAM) throw invalid(`more than ${MAX_STATUSES_PER_STREAM} statuses on one stream`)
    for (const item of items) await receive(item)
  }
  await stream.close()
}

/** Sends statuses in messages of STATUSES_PER_MESSAGE, then closes the stream. */
export async function pushStatuses (stream: MessageStream, held: HeldStatus[]): Promise<void> {
  for (let at = 0; at < held.length; at += STATUSES_PER_MESSAGE) {
    await stream.send({ statuses: held.slice(at, at + STATUSES_PER_MESSAGE).map(h => [h.signed.bytes, h.signed.sig]) })
  }
  await stream.close()
}

/** What the gossip needs of the protocol host (src/peer/protocol-host.ts): trust is checked there. */
export interface StatusHost {
  handle: (spec: ProtocolSpec, track?: (p: Promise<void>) => void) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  connectedPeers: () => string[]
  open: (peerId: string, protocol: string, options: { maxMessageSize: number, signal?: AbortSignal }) => Promise<FramedStream>
}

/** Connection events of the libp2p node. */
export interface PeerEvents {
  addEventListener: (type: 'peer:connect' | 'peer:disconnect', listener: (evt: CustomEvent<{ toString: () => string }>) => void) => void
  removeEventListener: (type: 'peer:connect' | 'peer:disconnect', listener: (evt: CustomEvent<{ toString: () => string }>) => void) => void
}

export interface StatusGossipInit {
  self: string
  key: PrivateKey
  host: StatusHost
  events: PeerEvents
  book: StatusBook
  /** This node's status body, made now. */
  collect: () => Promise<StatusBody>
  /** How often this node makes and pushes its status. */
  everyMs: number
  /** A status a peer sent was refused (counted by the book already). */
  onRefused?: (peer: string, refusal: StatusRefusal) => void
  onError?: (err: unknown) => void
  now?: () => number
}

interface PeerPush {
  /** Newest seq of each origin sent to the peer on this connection. */
  sent: Map<string, number>
  running: Promise<void> | undefined
  again: boolean
}

/**
 * Makes this node's status about once every `everyMs` (and soon after a
 * peer connects or leaves), and pushes to each connected trusted peer
 * every held status newer than what it was sent on this connection: its
 * own, and those it relays. Takes the statuses peers push into the book.
 */
export class StatusGossip implements Startable {
  readonly #o: StatusGossipInit
  readonly #now: () => number
  readonly #peers = new Map<string, PeerPush>()
  readonly #tasks = new Set<Promise<unknown>>()
  readonly #abort = new AbortController()
  /** Streams open now, both ways: a stop resets them rather than wait for a slow peer. */
  readonly #streams = new Set<MessageStream>()
  readonly #connectTimers = new Set<NodeJS.Timeout>()
  #timer: NodeJS.Timeout | undefined
  #soon: NodeJS.Timeout | undefined
  #relay: NodeJS.Timeout | undefined
  #publishing: Promise<void> | undefined
  #lastPublish = 0
  #again = false
  #stopped = false

  constructor (init: StatusGossipInit) {
    this.#o = init
    this.#now = init.now ?? Date.now
  }

  async start (): Promise<void> {
    await this.#o.host.handle({
      protocol: STATUS_PROTOCOL,
      maxMessageSize: MAX_STATUS_MESSAGE,
      maxInboundStreams: 1,
      serve: async (stream, peerId) => {
        await this.#using(stream, async () => { await serveStatuses(stream, async item => { await this.#receive(item, peerId) }) })
      }
    }, p => { this.#track(p) })
    this.#o.events.addEventListener('peer:connect', this.#onConnect)
    this.#o.events.addEventListener('peer:disconnect', this.#onDisconnect)
    // Not awaited: the first status counts every record, which a start need not wait for.
    this.#track(this.publish())
    this.#schedule()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#abort.abort()
    clearTimeout(this.#timer)
    clearTimeout(this.#soon)
    clearTimeout(this.#relay)
    for (const timer of this.#connectTimers) clearTimeout(timer)
    for (const stream of this.#streams) stream.abort(new Error('the node is stopping'))
    this.#o.events.removeEventListener('peer:connect', this.#onConnect)
    this.#o.events.removeEventListener('peer:disconnect', this.#onDisconnect)
    await this.#o.host.unhandle(STATUS_PROTOCOL)
    await Promise.allSettled([...this.#tasks, this.#publishing])
  }

  /** Makes a new own status now and pushes it (and anything else due) to every connected peer. */
  async publish (): Promise<void> {
    if (this.#publishing !== undefined) {
      // The one under way may have looked before what the caller wants said: one more after it.
      this.#again = true
      await this.#publishing
      return
    }
    this.#publishing = (async () => {
      do {
        this.#again = false
        // Receivers take one status per origin every MIN_ACCEPT_INTERVAL_MS at most.
        const gap = this.#lastPublish + MIN_PUBLISH_GAP_MS - this.#now()
        if (gap > 0) await sleep(gap, this.#abort.signal)
        if (this.#stopped) return
        await this.#publish()
      } while (this.#again)
    })().finally(() => { this.#publishing = undefined })
    await this.#publishing
  }

  async #publish (): Promise<void> {
    try {
      const body = await this.#o.collect()
      // Strictly above anything this node said before, even with a clock set back.
      const seq = Math.max(this.#now(), this.#o.book.ownFloor + 1)
      const status = { node: this.#o.self, seq, body }
      await this.#o.book.putOwn(status, await signStatus(this.#o.key, status))
      this.#lastPublish = this.#now()
    } catch (err) {
      if (!this.#stopped) this.#o.onError?.(err)
      return
    }
    this.#pushAll()
  }

  #schedule (): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#track(this.publish().finally(() => { this.#schedule() }))
    }, this.#o.everyMs)
  }

  /** A peer came or went: the own status says so soon, once for a burst of such events. */
  #significant (): void {
    if (this.#stopped || this.#soon !== undefined) return
    this.#soon = setTimeout(() => {
      this.#soon = undefined
      this.#track(this.publish())
    }, Math.min(SIGNIFICANT_DELAY_MS, this.#o.everyMs))
  }

  readonly #onConnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    const peer = evt.detail.toString()
    this.#peers.delete(peer)
    this.#significant()
    // Everything held goes to the new peer at once, not with the next status.
    const timer = setTimeout(() => { this.#connectTimers.delete(timer); this.#pushTo(peer) }, RELAY_DELAY_MS)
    this.#connectTimers.add(timer)
  }

  readonly #onDisconnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    // What it was sent counts for that connection only.
    this.#peers.delete(evt.detail.toString())
    this.#significant()
  }

  async #receive (item: unknown, from: string): Promise<void> {
    try {
      await this.#o.book.receive(item, from)
    } catch (err) {
      if (err instanceof StatusRefusal) { this.#o.onRefused?.(from, err); return }
      throw err
    }
    if (this.#relay === undefined && !this.#stopped) {
      this.#relay = setTimeout(() => { this.#relay = undefined; this.#pushAll() }, RELAY_DELAY_MS)
    }
  }

  #pushAll (): void {
    if (this.#stopped) return
    for (const peer of this.#o.host.connectedPeers()) this.#pushTo(peer)
  }

  /** Pushes what the peer has not been sent; one push per peer at a time (a request meanwhile runs after it). */
  #pushTo (peer: string): void {
    if (this.#stopped) return
    let p = this.#peers.get(peer)
    if (p === undefined) {
      p = { sent: new Map(), running: undefined, again: false }
      this.#peers.set(peer, p)
    }
    if (p.running !== undefined) { p.again = true; return }
    const state = p
    state.running = (async () => {
      do {
        state.again = false
        const due = this.#o.book.list().filter(h =>
          h.status.node !== peer && h.via !== peer && (state.sent.get(h.status.node) ?? 0) < h.status.seq)
        if (due.length === 0) break
        try {
          const stream = await this.#o.host.open(peer, STATUS_PROTOCOL, { maxMessageSize: MAX_STATUS_MESSAGE, signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(30_000)]) })
          await this.#using(stream, async () => { await pushStatuses(stream, due) })
          for (const h of due) state.sent.set(h.status.node, Math.max(state.sent.get(h.status.node) ?? 0, h.status.seq))
        } catch {
          // Not connected any more, not trusted, or the stream broke: the next push tries again.
          break
        }
      } while (state.again && !this.#stopped)
    })().finally(() => { state.running = undefined })
    this.#track(state.running)
  }

  async #using (stream: MessageStream, use: () => Promise<void>): Promise<void> {
    this.#streams.add(stream)
    try {
      await use()
    } finally {
      this.#streams.delete(stream)
    }
  }

  #track (p: Promise<unknown>): void {
    const tracked = p.catch(err => { if (!this.#stopped) this.#o.onError?.(err) })
    this.#tasks.add(tracked)
    void tracked.finally(() => this.#tasks.delete(tracked))
  }
}
