/**
 * A token bucket over bytes: `take(n)` waits until `n` bytes fit within the
 * configured rate. Used to keep blob transfers and frames sent to a peer
 * from filling a thin link. Takers share the bucket: each one that finds it
 * in debt waits for the debt to clear at the rate.
 */
export class RateLimit {
  readonly bytesPerSecond: number
  #available: number
  #last = performance.now()

  constructor (bytesPerSecond: number) {
    this.bytesPerSecond = bytesPerSecond
    // Up to a quarter of a second of burst.
    this.#available = bytesPerSecond / 4
  }

  async take (bytes: number): Promise<void> {
    const now = performance.now()
    this.#available = Math.min(this.bytesPerSecond / 4, this.#available + (now - this.#last) / 1000 * this.bytesPerSecond)
    this.#last = now
    this.#available -= bytes
    if (this.#available < 0) {
      await new Promise(resolve => setTimeout(resolve, -this.#available / this.bytesPerSecond * 1000))
    }
  }
}
