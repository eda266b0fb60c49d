/** A counting semaphore: at most `size` tasks run at once, the rest wait in order. */
export class Slots {
  readonly #size: number
  #busy = 0
  readonly #waiting: Array<() => void> = []

  constructor (size: number) {
    this.#size = size
  }

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.#busy >= this.#size) await new Promise<void>(resolve => this.#waiting.push(resolve))
    else this.#busy += 1
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next !== undefined) next()
      else this.#busy -= 1
    }
  }
}
