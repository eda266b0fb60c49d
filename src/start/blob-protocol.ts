import type { BlobStore } from '../blobs/blob-store.ts'
import { BLOB_PROTOCOL, MAX_BLOB_MESSAGE } from '../blobs/transfer/messages.ts'
import { serveBlob, type RecordsFirst } from '../blobs/transfer/serve.ts'
import type { BlobTransport } from '../blobs/transfer/fetcher.ts'
import type { ProtocolHost } from '../peer/protocol-host.ts'

export interface BlobProtocolInit {
  host: ProtocolHost
  store: BlobStore
  /** True when a live record this node shares references the blob. */
  isShared: (sha256: string) => Promise<boolean>
  /** Concurrent blob streams one peer may open to us. */
  maxInboundStreams?: number
  /** Records to a peer go before the file bytes sent to it (peer/link-priority.ts). */
  priority?: RecordsFirst
}

/**
 * `/dw/blob/1.0.0` wired to libp2p through the protocol host (which checks
 * trust and audits violations): serves blobs to trusted peers and gives the
 * fetcher its transport. Here rather than in peer/ or blobs/, since it
 * joins the two.
 */
export class BlobProtocol {
  readonly #init: BlobProtocolInit
  bytesServed = 0

  constructor (init: BlobProtocolInit) {
    this.#init = init
  }

  async start (): Promise<void> {
    await this.#init.host.handle({
      protocol: BLOB_PROTOCOL,
      maxMessageSize: MAX_BLOB_MESSAGE,
      maxInboundStreams: this.#init.maxInboundStreams ?? 8,
      serve: async (stream, peerId) => {
        await serveBlob(stream, this.#init.store, {
          mayServe: this.#init.isShared,
          onBytes: n => { this.bytesServed += n },
          peer: peerId,
          ...(this.#init.priority === undefined ? {} : { priority: this.#init.priority })
        })
      }
    })
  }

  async stop (): Promise<void> {
    await this.#init.host.unhandle(BLOB_PROTOCOL)
  }

  readonly transport: BlobTransport = {
    connectedPeers: () => this.#init.host.connectedPeers(),
    openStream: async (peerId) => await this.#init.host.open(peerId, BLOB_PROTOCOL, { maxMessageSize: MAX_BLOB_MESSAGE })
  }
}
