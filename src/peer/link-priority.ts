/**
 * Records before files on one connection (issue 11, "Priorities").
 *
 * Sync frames and file bytes to a peer share one Yamux connection, and so
 * one TCP send queue: whatever file data is queued ahead of a sync message
 * delays it by its length at the link's rate (at 1 Mbit/s, every 125 kB is
 * a second). The blob server keeps that queue short (a window of a round
 * trip plus 0.15 s of data, send-window.ts) and, through this gate, sends
 * no new piece of a file while a sync session to the same peer has records
 * moving: an offer waiting for its want, a push not yet acknowledged, or
 * documents being sent.
 *
 * The wait is bounded: a peer whose records change without pause would
 * otherwise starve its file transfers for ever. With the bound, a constant
 * stream of changes slows a transfer to one piece per `maxWaitMs` and
 * never stops it, and the transfer's idle timeout (10 s without a byte on
 * the receiving side) is never reached because of records.
 */
export class LinkPriority {
  readonly #maxWaitMs: number
  /** Sync sessions with records moving, per peer: several sessions to one peer may be busy at once. */
  readonly #busy = new Map<string, number>()
  readonly #waiting = new Map<string, Set<() => void>>()

  constructor (options: { maxWaitMs?: number } = {}) {
    this.#maxWaitMs = options.maxWaitMs ?? MAX_YIELD_MS
  }

  /**
   * A sync session to `peerId` reports whether it has records moving. Each
   * session reports `true` and `false` in turn (serveSync's `onBusy`); an
   * unmatched `false` is ignored, so a count never goes below zero.
   */
  syncBusy (peerId: string, busy: boolean): void {
    const now = this.#busy.get(peerId) ?? 0
    if (busy) {
      this.#busy.set(peerId, now + 1)
      return
    }
    if (now > 1) {
      this.#busy.set(peerId, now - 1)
      return
    }
    this.#busy.delete(peerId)
    const waiting = this.#waiting.get(peerId)
    this.#waiting.delete(peerId)
    for (const wake of waiting ?? []) wake()
  }

  /** Whether records are moving to `peerId` now. */
  busy (peerId: string): boolean {
    return this.#busy.has(peerId)
  }

  /**
   * Resolves at once when no sync session to `peerId` has records moving,
   * else when none has, but after `maxWaitMs` at most. Rejects with the
   * signal's reason if it aborts first.
   */
  async yieldToRecords (peerId: string, signal?: AbortSignal): Promise<void> {
    if (!this.#busy.has(peerId)) return
    signal?.throwIfAborted()
    const waiting = this.#waiting.get(peerId) ?? new Set()
    this.#waiting.set(peerId, waiting)
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const timer = setTimeout(resolve, this.#maxWaitMs)
    const onAbort = (): void => { reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    waiting.add(resolve)
    try {
      await promise
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      waiting.delete(resolve)
      if (waiting.size === 0 && this.#waiting.get(peerId) === waiting) this.#waiting.delete(peerId)
    }
  }
}

/**
 * The longest a file piece waits for records to a peer. Long enough for a
 * batch of changed records to go ahead on a thin link (100 records, ~30 kB,
 * take a quarter of a second at 1 Mbit/s), short enough that a file still
 * moves while records never stop changing.
 */
export const MAX_YIELD_MS = 2_000
