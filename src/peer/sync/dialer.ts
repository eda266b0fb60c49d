import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection } from '@libp2p/interface'
import type { PeerNode } from '../libp2p.ts'
import type { PeerBook } from '../peer-book.ts'

/**
 * Opens connections to peers by the addresses in the peer book, never the
 * ones libp2p learnt from identify: the admin's address is the route the
 * site chose, for example through a tunnel or a proxy.
 */
export class Dialer {
  readonly #node: PeerNode
  readonly #book: PeerBook

  constructor (node: PeerNode, book: PeerBook) {
    this.#node = node
    this.#book = book
  }

  /** An open connection to the peer: the existing one, or the first of its book addresses that answers. */
  async connection (peerId: string, signal?: AbortSignal): Promise<Connection> {
    const open = this.#node.getConnections(peerIdFromString(peerId)).find(c => c.status === 'open')
    if (open !== undefined) return open
    const entry = this.#book.get(peerId)
    if (entry === undefined) throw new Error(`${peerId} is not in the peer book`)
    let lastErr: unknown
    for (const addr of entry.addrs) {
      try {
        return await this.#node.dial(multiaddr(addr), { signal: signal ?? AbortSignal.timeout(10_000) })
      } catch (err) {
        lastErr = err
      }
    }
    throw lastErr ?? new Error('no address to dial')
  }
}
