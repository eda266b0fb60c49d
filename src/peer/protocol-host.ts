import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import type { AuditLog } from '../audit.ts'
import { DwError, isDwError } from '../errors.ts'
import { FramedStream, type Pacer } from './framed-stream.ts'
import type { PeerNode } from './libp2p.ts'
import type { PeerBook } from './peer-book.ts'
import { refusalMessage, refusedAfterHandshake, REFUSAL_WINDOW_MS, type Refusal } from './link-failures.ts'

/** One protocol this node speaks to its peers. */
export interface ProtocolSpec {
  protocol: string
  /** Largest frame either side may send. */
  maxMessageSize: number
  /** Concurrent inbound streams one peer may open. */
  maxInboundStreams: number
  /** Serves one inbound stream from a trusted peer; throws DwError INVALID_MESSAGE on a protocol violation. */
  serve: (stream: FramedStream, peerId: string) => Promise<void>
}

/** The one place streams to and from peers pass the trust gate. */
export interface StreamOpener {
  /** Trusted peers with an open connection. */
  connectedPeers: () => string[]
  /** A framed stream to a trusted, connected peer; PEER_NOT_ALLOWED for anyone else. */
  open: (peerId: string, protocol: string, options: { maxMessageSize: number, signal?: AbortSignal }) => Promise<FramedStream>
}

/**
 * Every protocol (sync, blobs) goes through here: the trust gate (the peer
 * book) is checked on every stream, inbound and outbound, streams are
 * framed the same way, and violations are audited with a stable error code
 * (`PEER_NOT_ALLOWED` for a peer that is not trusted, `INVALID_MESSAGE` for
 * a broken protocol) before the stream is reset. The connection gater
 * already keeps untrusted peers out; this catches a peer removed while its
 * connection was still open, and keeps each protocol free of the check.
 */
export class ProtocolHost implements StreamOpener {
  readonly #node: PeerNode
  readonly #book: PeerBook
  readonly #audit: AuditLog
  readonly #pacer: ((peerId: string) => Pacer | undefined) | undefined
  /** Connections a stream of ours got through on: their closing is no refusal. */
  readonly #carried = new WeakSet<Connection>()
  /** Per trusted peer, its last outbound connection that it cut short after the handshake. */
  readonly #refusals = new Map<string, Refusal>()

  /**
   * `pacer` caps what is sent to a peer (its link profile's rate), shared
   * by every stream to that peer, whatever the protocol: sync frames and
   * file bytes alike.
   */
  constructor (init: { node: PeerNode, book: PeerBook, audit: AuditLog, pacer?: (peerId: string) => Pacer | undefined }) {
    this.#node = init.node
    this.#book = init.book
    this.#audit = init.audit
    this.#pacer = init.pacer
    // Lives as long as the node it listens to: both stop together.
    this.#node.addEventListener('connection:close', (evt) => { this.#closed(evt.detail) })
  }

  /**
   * Why the peer turned this node away, in words, if its last connection
   * from here was cut short after the handshake (see link-failures.ts); kept
   * until a stream to it gets through or it is removed from the book.
   */
  refusal (peerId: string): string | undefined {
    const refusal = this.#refusals.get(peerId)
    if (refusal === undefined) return undefined
    return refusalMessage(refusal, this.#node.peerId.toString(), this.#book.get(peerId)?.lastSyncAt !== undefined)
  }

  #closed (conn: Connection): void {
    const peerId = conn.remotePeer.toString()
    if (!this.#book.isTrusted(peerId)) {
      this.#refusals.delete(peerId)
      return
    }
    if (refusedAfterHandshake(conn, this.#carried.has(conn))) this.#refusals.set(peerId, { addr: conn.remoteAddr.toString(), at: Date.now() })
  }

  /** Starts serving a protocol; `track` keeps the serving promise so a stop can await it. */
  async handle (spec: ProtocolSpec, track: (p: Promise<void>) => void = () => {}): Promise<void> {
    await this.#node.handle(spec.protocol, (stream, connection) => { track(this.#serve(spec, stream, connection)) }, { maxInboundStreams: spec.maxInboundStreams })
  }

  async unhandle (protocol: string): Promise<void> {
    await this.#node.unhandle(protocol).catch(() => {})
  }

  connectedPeers (): string[] {
    const ids = new Set(this.#node.getConnections().filter(c => c.status === 'open').map(c => c.remotePeer.toString()))
    return [...ids].filter(id => this.#book.isTrusted(id))
  }

  async open (peerId: string, protocol: string, options: { maxMessageSize: number, signal?: AbortSignal }): Promise<FramedStream> {
    if (!this.#book.isTrusted(peerId)) throw new DwError('PEER_NOT_ALLOWED', `peer ${peerId} is not trusted`)
    const conn = this.#node.getConnections(peerIdFromString(peerId)).find(c => c.status === 'open')
    if (conn === undefined) throw this.#refusedError(peerId) ?? new Error(`not connected to ${peerId}`)
    let stream: Stream
    try {
      stream = await conn.newStream(protocol, { signal: options.signal ?? AbortSignal.timeout(10_000) })
    } catch (err) {
      // The far end closing a fresh connection is its gater refusing us,
      // which libp2p reports as an EOF (or a bare Event): say so instead.
      if (conn.status !== 'open' && refusedAfterHandshake(conn, this.#carried.has(conn))) {
        this.#refusals.set(peerId, { addr: conn.remoteAddr.toString(), at: Date.now() })
        throw this.#refusedError(peerId, err) as DwError
      }
      throw err
    }
    this.#carried.add(conn)
    this.#refusals.delete(peerId)
    return this.#framed(stream, peerId, options.maxMessageSize)
  }

  /** PEER_REFUSED for a peer that turned this node away moments ago. */
  #refusedError (peerId: string, cause?: unknown): DwError | undefined {
    const refusal = this.#refusals.get(peerId)
    if (refusal === undefined || refusal.at < Date.now() - REFUSAL_WINDOW_MS) return undefined
    return new DwError('PEER_REFUSED', this.refusal(peerId) as string, { cause, details: { addr: refusal.addr } })
  }

  #framed (stream: Stream, peerId: string, maxMessageSize: number): FramedStream {
    const pacer = this.#pacer
    return new FramedStream(stream, { maxMessageSize, ...(pacer === undefined ? {} : { pacer: () => pacer(peerId) }) })
  }

  async #serve (spec: ProtocolSpec, stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const framed = this.#framed(stream, peerId, spec.maxMessageSize)
    if (!this.#book.isTrusted(peerId)) {
      const err = new DwError('PEER_NOT_ALLOWED', `peer ${peerId} is not trusted`)
      this.#violation(peerId, spec.protocol, err)
      framed.abort(err)
      return
    }
    try {
      await spec.serve(framed, peerId)
    } catch (err) {
      if (isDwError(err, 'INVALID_MESSAGE')) this.#violation(peerId, spec.protocol, err)
      framed.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  #violation (peerId: string, protocol: string, err: DwError): void {
    void this.#audit.append({ type: 'sync.violation', peer: peerId, outcome: 'error', details: { code: err.code, protocol, message: err.message, side: 'server' } }).catch(() => {})
  }
}
