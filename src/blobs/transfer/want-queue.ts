import { isDwError } from '../../errors.ts'
import type { BlobStore } from '../blob-store.ts'
import type { BlobFetcher } from './fetcher.ts'

interface Want {
  sha256: string
  size: number
  triedAt: number
  /** Why the last attempt did not bring it (no peer has it, a link profile held it back). */
  waiting?: string
}

/**
 * Blobs this node wants but does not have: pinned files and files someone
 * asked for while no peer had them. Fetched in the background, smallest
 * first (many small files become useful sooner than one huge one), retried
 * when a peer connects and every `retryMs`. A blob whose record declares a
 * size no peer's copy has is dropped (retrying cannot help); another record
 * wanting it asks again. Nobody waits for these: they are background
 * fetches, which peers' link profiles may hold back (`waiting` says so).
 */
export class WantQueue {
  readonly #fetcher: BlobFetcher
  readonly #store: BlobStore
  readonly #wants = new Map<string, Want>()
  readonly #concurrency: number
  readonly #retryMs: number
  #active = 0
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (fetcher: BlobFetcher, store: BlobStore, options: { concurrency?: number, retryMs?: number } = {}) {
    this.#fetcher = fetcher
    this.#store = store
    this.#concurrency = options.concurrency ?? 2
    this.#retryMs = options.retryMs ?? 30_000
  }

  start (): void {
    this.#timer = setInterval(() => { this.kick(true) }, this.#retryMs)
    this.#timer.unref()
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#timer)
  }

  pending (): Array<{ sha256: string, size: number, waiting?: string }> {
    return [...this.#wants.values()].map(w => ({ sha256: w.sha256, size: w.size, ...(w.waiting === undefined ? {} : { waiting: w.waiting }) }))
  }

  async want (sha256: string, size: number): Promise<void> {
    if (this.#wants.has(sha256) || await this.#store.has(sha256)) return
    this.#wants.set(sha256, { sha256, size, triedAt: 0 })
    this.kick()
  }

  /** Start fetching what is due; `retry` makes earlier failures due again. */
  kick (retry = false): void {
    if (retry) for (const w of this.#wants.values()) w.triedAt = 0
    while (!this.#stopped && this.#active < this.#concurrency) {
      const next = [...this.#wants.values()].filter(w => w.triedAt === 0).sort((a, b) => a.size - b.size)[0]
      if (next === undefined) return
      next.triedAt = Date.now()
      this.#active += 1
      // 0 may mean "unknown" (a summary from before sizes were kept): an empty file needs no check anyway.
      this.#fetcher.fetch(next.sha256, { ...(next.size > 0 ? { size: next.size } : {}), background: true }).then(() => {
        this.#wants.delete(next.sha256)
      }, (err: unknown) => {
        // Otherwise it stays wanted; retried on the next connect, timer tick or link profile change.
        if (isDwError(err, 'CONFLICT')) this.#wants.delete(next.sha256)
        else next.waiting = (err as Error)?.message ?? String(err)
      }).finally(() => {
        this.#active -= 1
        this.kick()
      })
    }
  }
}
