import { statfs } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { binarySublevel, type Db } from '../db.ts'
import type { EngineWatch } from '../crdt/engine-watch.ts'

/** Free space below which the node says it is not ready: a write might not fit. */
export const MIN_FREE_BYTES = 64 * 1024 * 1024

export interface Readiness {
  ready: boolean
  /** Each check: 'ok' or what is wrong. */
  checks: { store: string, engine: string, disk: string }
}

/**
 * Whether the node can do its job now, as `GET /readyz` and `dw status`
 * report it: the store reads back what it writes, the Automerge engine
 * works, and the data directory's disk has room.
 */
export class ReadinessCheck {
  readonly #probe: ReturnType<typeof binarySublevel>
  readonly #dataDir: string
  readonly #engine: EngineWatch

  constructor (db: Db, dataDir: string, engine: EngineWatch) {
    this.#probe = binarySublevel(db, 'readiness')
    this.#dataDir = dataDir
    this.#engine = engine
  }

  async check (): Promise<Readiness> {
    const [store, disk] = await Promise.all([this.#store(), this.#disk()])
    const engine = this.#engine.probe() ? 'ok' : 'the Automerge engine has failed; the node must restart'
    return { ready: store === 'ok' && engine === 'ok' && disk === 'ok', checks: { store, engine, disk } }
  }

  async #store (): Promise<string> {
    try {
      // A key of its own per probe: checks that run at once must not read each other's writes.
      const value = randomBytes(8)
      const key = value.toString('hex')
      await this.#probe.put(key, value)
      const back = await this.#probe.get(key)
      await this.#probe.del(key)
      return back !== undefined && Buffer.from(back).equals(value) ? 'ok' : 'the store did not read back what it wrote'
    } catch (err) {
      return `the store cannot read or write: ${err instanceof Error ? err.message : String(err)}`
    }
  }

  async #disk (): Promise<string> {
    try {
      const fs = await statfs(this.#dataDir)
      const free = fs.bavail * fs.bsize
      return free >= MIN_FREE_BYTES ? 'ok' : `the disk holding ${this.#dataDir} is full (${Math.floor(free / 1048576)} MiB free, ${MIN_FREE_BYTES / 1048576} MiB needed)`
    } catch (err) {
      return `cannot tell the disk's free space: ${err instanceof Error ? err.message : String(err)}`
    }
  }
}
