/**
 * Serialises work per key: `run` calls for one key run one at a time, in
 * call order, whether earlier ones succeeded or failed; different keys run
 * concurrently. Shared by the document store (a key per record) and the
 * blob stores (a key per hash).
 */
export class KeyLock {
  readonly #tails = new Map<string, Promise<unknown>>()

  async run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    const tail = previous.then(() => mine)
    this.#tails.set(key, tail)
    await previous.catch(() => {})
    try {
      return await fn()
    } finally {
      release()
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }

  /** Runs `fn` holding the locks of all `keys` (taken in sorted order, so two batches cannot deadlock). */
  async runAll<T> (keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort()
    const step = async (i: number): Promise<T> => {
      if (i === sorted.length) return await fn()
      return await this.run(sorted[i] as string, async () => await step(i + 1))
    }
    return await step(0)
  }
}
