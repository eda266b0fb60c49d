import { RateLimit } from '../rate-limit.ts'
import type { Pacer } from './framed-stream.ts'

/**
 * One byte budget per peer and direction, at the rate its link profile
 * caps: every stream to a peer (sync, blobs) draws on the same budget, so
 * the cap holds for the link, not per stream. A changed rate takes effect
 * on the next slice; a cleared one frees the budget.
 */
export class LinkRates {
  readonly #rateOf: (peerId: string) => number | undefined
  readonly #limits = new Map<string, RateLimit>()

  /** `rateOf` reads the peer's current cap in bytes per second (undefined: none). */
  constructor (rateOf: (peerId: string) => number | undefined) {
    this.#rateOf = rateOf
  }

  /** The budget for bytes sent to (`send`) or received from (`receive`) a peer; undefined when uncapped. */
  pacer (peerId: string, direction: 'send' | 'receive'): Pacer | undefined {
    const key = `${direction} ${peerId}`
    const rate = this.#rateOf(peerId)
    if (rate === undefined) {
      this.#limits.delete(key)
      return undefined
    }
    let limit = this.#limits.get(key)
    if (limit?.bytesPerSecond !== rate) {
      limit = new RateLimit(rate)
      this.#limits.set(key, limit)
    }
    return limit
  }
}
