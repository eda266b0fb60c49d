/**
 * Keeps garbage collection away from blobs that are about to be referenced:
 * an upload stores its blobs before the version that references them
 * exists. Uploads hold the guard (shared); collection takes it exclusively,
 * waiting for uploads in flight and holding new ones back while it runs.
 */
export class GcGuard {
  #holders = 0
  #collecting: Promise<void> | undefined
  #idle: Array<() => void> = []

  async hold<T> (work: () => Promise<T>): Promise<T> {
    while (this.#collecting !== undefined) await this.#collecting
    this.#holders += 1
    try {
      return await work()
    } finally {
      this.#holders -= 1
      if (this.#holders === 0) for (const wake of this.#idle.splice(0)) wake()
    }
  }

  async exclusive<T> (work: () => Promise<T>): Promise<T> {
    while (this.#collecting !== undefined) await this.#collecting
    let release!: () => void
    this.#collecting = new Promise<void>(resolve => { release = resolve })
    try {
      while (this.#holders > 0) await new Promise<void>(resolve => this.#idle.push(resolve))
      return await work()
    } finally {
      this.#collecting = undefined
      release()
    }
  }
}
