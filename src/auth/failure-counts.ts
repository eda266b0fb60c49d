interface Attempts {
  failures: number
  /** Attempts that began and have not yet ended. */
  inFlight: number
  lastAt: number
}

/**
 * Recent failed attempts per key, in memory and bounded: at most
 * `maxEntries` keys, the least recently touched evicted first. Failures
 * further apart than `windowMs` do not add up.
 */
export class FailureCounts {
  readonly #windowMs: number
  readonly #maxEntries: number
  readonly #entries = new Map<string, Attempts>()

  constructor (windowMs: number, maxEntries: number) {
    this.#windowMs = windowMs
    this.#maxEntries = maxEntries
  }

  get size (): number {
    return this.#entries.size
  }

  /**
   * Failures plus attempts still in flight: an attempt counts as a failure
   * until it ends, so guesses fired in parallel cannot slip past a limit.
   */
  pending (key: string, now: number): number {
    const entry = this.#current(key, now)
    return entry === undefined ? 0 : entry.failures + entry.inFlight
  }

  begin (key: string, now: number): void {
    const entry = this.#current(key, now) ?? { failures: 0, inFlight: 0, lastAt: now }
    entry.inFlight++
    entry.lastAt = now
    this.#store(key, entry)
  }

  /** Ends an attempt that began; returns the key's failures so far. */
  end (key: string, now: number, failed: boolean): number {
    const entry = this.#current(key, now) ?? { failures: 0, inFlight: 0, lastAt: now }
    entry.inFlight = Math.max(0, entry.inFlight - 1)
    if (failed) entry.failures++
    entry.lastAt = now
    this.#store(key, entry)
    return entry.failures
  }

  forget (key: string): void {
    this.#entries.delete(key)
  }

  #current (key: string, now: number): Attempts | undefined {
    const entry = this.#entries.get(key)
    if (entry !== undefined && now - entry.lastAt > this.#windowMs) {
      this.#entries.delete(key)
      return undefined
    }
    return entry
  }

  // Re-inserting keeps the Map in least-recently-touched order for eviction.
  #store (key: string, entry: Attempts): void {
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    evictOldest(this.#entries, this.#maxEntries)
  }
}

export function evictOldest (map: Map<string, unknown>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next()
    if (oldest.done === true) return
    map.delete(oldest.value)
  }
}
