import { Lru } from '../../crdt/lru.ts'
import type { HeadsItem } from './messages.ts'

/**
 * Keys, per entry at most. A 10,000-record initial sync fits; past it the
 * oldest are forgotten and their echoes are offered, which costs bytes,
 * never correctness. About 200 bytes an entry.
 */
const MAX_ENTRIES = 20_000

/**
 * What one peer has said it holds, from the offers it made us: the heads of
 * each document it offered. Everything a node receives enters its own
 * feed (so it hops on to third nodes), and without this the node would
 * offer every document straight back to the peer it came from: in an
 * initial sync that echo was 70% of the bytes going back.
 *
 * A document whose heads here equal what the peer offered is one the peer
 * holds exactly (its store only grows), so the offer is skipped. The memory
 * lives with the connection: a peer restored from a backup reconnects, and
 * starts with nothing known.
 */
export class OfferedHeads {
  readonly #seen = new Lru<string, string>(MAX_ENTRIES)

  /** Notes what the peer offered. */
  offered (items: HeadsItem[]): void {
    for (const [key, heads] of items) this.#seen.set(key, fingerprint(heads))
  }

  /** True when the peer offered exactly these heads for `key`; the entry is used up, an echo comes once. */
  has (key: string, heads: string[]): boolean {
    const seen = this.#seen.get(key)
    if (seen === undefined || seen !== fingerprint(heads)) return false
    this.#seen.delete(key)
    return true
  }

  clear (): void {
    this.#seen.clear()
  }
}

function fingerprint (heads: string[]): string {
  return [...heads].sort().join(',')
}
