import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import type { AuditLog } from '../audit.ts'
import type { BlobStore } from '../blobs/blob-store.ts'
import { BLOB_PROTOCOL, MAX_BLOB_MESSAGE } from '../blobs/transfer/messages.ts'
import { serveBlob } from '../blobs/transfer/serve.ts'
import type { BlobTransport } from '../blobs/transfer/fetcher.ts'
import type { MessageStream } from '../message-stream.ts'
import { isDwError } from '../errors.ts'
import { FramedStream } from './framed-stream.ts'
import type { PeerNode } from './libp2p.ts'
import type { PeerBook } from './peer-book.ts'

export interface BlobServiceInit {
  node: PeerNode
  book: PeerBook
  store: BlobStore
  audit: AuditLog
  /** True when a live record this node shares references the blob. */
  isShared: (sha256: string) => Promise<boolean>
  /** Concurrent blob streams one peer may open to us. */
  maxInboundStreams?: number
}

/**
 * `/dw/blob/1.0.0` over libp2p: serves blobs to trusted peers and gives the
 * fetcher its transport (streams to connected, trusted peers).
 */
export class BlobService {
  readonly #init: BlobServiceInit
  bytesServed = 0

  constructor (init: BlobServiceInit) {
    this.#init = init
  }

  async start (): Promise<void> {
    await this.#init.node.handle(BLOB_PROTOCOL, (stream, connection) => { void this.#serve(stream, connection) }, {
      maxInboundStreams: this.#init.maxInboundStreams ?? 8
    })
  }

  async stop (): Promise<void> {
    await this.#init.node.unhandle(BLOB_PROTOCOL).catch(() => {})
  }

  readonly transport: BlobTransport = {
    connectedPeers: () => {
      const ids = new Set(this.#init.node.getConnections().filter(c => c.status === 'open').map(c => c.remotePeer.toString()))
      return [...ids].filter(id => this.#init.book.isTrusted(id))
    },
    openStream: async (peerId: string): Promise<MessageStream> => {
      const conn = this.#init.node.getConnections(peerIdFromString(peerId)).find(c => c.status === 'open')
      if (conn === undefined) throw new Error(`not connected to ${peerId}`)
      const stream = await conn.newStream(BLOB_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      return new FramedStream(stream, { maxMessageSize: MAX_BLOB_MESSAGE })
    }
  }

  async #serve (stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const framed = new FramedStream(stream, { maxMessageSize: MAX_BLOB_MESSAGE })
    if (!this.#init.book.isTrusted(peerId)) {
      framed.abort(new Error('not trusted'))
      return
    }
    try {
      await serveBlob(framed, this.#init.store, {
        mayServe: this.#init.isShared,
        onBytes: n => { this.bytesServed += n }
      })
    } catch (err) {
      if (isDwError(err, 'INVALID_MESSAGE')) {
        void this.#init.audit.append({ type: 'sync.violation', peer: peerId, outcome: 'error', details: { protocol: BLOB_PROTOCOL, message: (err as Error).message } }).catch(() => {})
      }
      framed.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }
}
