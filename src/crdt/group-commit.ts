import type { Db, Sublevel } from '../db.ts'

/** One write into one sublevel; a group of them commits atomically. */
export type BatchOp =
  | { type: 'put', sublevel: Sublevel<any>, key: string, value: unknown }
  | { type: 'del', sublevel: Sublevel<any>, key: string }

interface Waiter { ops: BatchOp[], resolve: () => void, reject: (err: unknown) => void }

/**
 * Group commit: writes that arrive while a flush is in progress are written
 * together in the next single `sync: true` batch. Every caller still waits
 * for its own fsync (nothing is acknowledged before it is on disk), but
 * concurrent writers share one fsync instead of queueing for one each.
 */
export class GroupCommit {
  readonly #db: Db
  #queue: Waiter[] = []
  #flushing: Promise<void> | undefined

  constructor (db: Db) {
    this.#db = db
  }

  async write (ops: BatchOp[]): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ ops, resolve, reject })
      this.#flushing ??= this.#flushLoop()
    })
  }

  /** Resolves once everything queued so far is on disk. */
  async idle (): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing
  }

  async #flushLoop (): Promise<void> {
    // Let the current tick's writers join the first batch.
    await new Promise(resolve => setImmediate(resolve))
    try {
      while (this.#queue.length > 0) {
        const waiters = this.#queue
        this.#queue = []
        try {
          // abstract-level accepts a `sublevel` per operation; its types cannot express a mix.
          await this.#db.batch(waiters.flatMap(w => w.ops) as any, { sync: true })
          for (const w of waiters) w.resolve()
        } catch (err) {
          for (const w of waiters) w.reject(err)
        }
      }
    } finally {
      this.#flushing = undefined
    }
  }
}
