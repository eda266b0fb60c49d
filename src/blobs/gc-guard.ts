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
  /** Work waiting for a moment with no upload in flight (see whenIdle). */
  #deferred: Array<() => Promise<void>> = []

  async hold<T> (work: () => Promise<T>): Promise<T> {
    while (this.#collecting !== undefined) await this.#collecting
    this.#holders += 1
    try {
      return await work()
    } finally {
      this.#holders -= 1
      if (this.#holders === 0) {
        for (const wake of this.#idle.splice(0)) wake()
        this.#runDeferred()
      }
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

  /**
   * Runs `work` exclusively, but without making anyone wait for it: now
   * (awaited) when no upload is in flight, otherwise once the last upload in
   * flight ends, so a long upload elsewhere never holds new uploads back.
   * Deferred work that fails is dropped: it is only ever an early clean-up
   * that a later garbage collection also does.
   */
  async whenIdle (work: () => Promise<void>): Promise<void> {
    if (this.#holders === 0) {
      await this.exclusive(work)
      return
    }
    this.#deferred.push(work)
  }

  #runDeferred (): void {
    if (this.#deferred.length === 0) return
    const batch = this.#deferred.splice(0)
    void this.exclusive(async () => {
      for (const work of batch) await work().catch(() => {})
    })
  }
}
