import * as A from '@automerge/automerge'
import type { Startable } from '../lifecycle.ts'

/** True when this process's Automerge engine can still make, save and load a document. */
export function automergeWorks (): boolean {
  try {
    const doc = A.from<{ ok: number }>({ ok: 1 })
    const back = A.load<{ ok: number }>(A.save(doc))
    const ok = back.ok === 1
    A.free(doc)
    A.free(back)
    return ok
  } catch {
    return false
  }
}

const PROBE_MS = 5000

/**
 * Notices when the Automerge engine in this process has failed (a wasm trap
 * leaves it answering every call with an error): without this a node
 * would answer 500 to every record request until someone restarts it.
 * `onFailure` runs once; `dw start` exits non-zero so its supervisor
 * restarts the node, which loads nothing that failed (it was never stored).
 */
export class EngineWatch implements Startable {
  readonly #onFailure: () => void
  #timer: NodeJS.Timeout | undefined
  #alive = true

  constructor (onFailure: () => void) {
    this.#onFailure = onFailure
  }

  get alive (): boolean { return this.#alive }

  start (): void {
    this.#timer = setInterval(() => { this.probe() }, PROBE_MS)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Checks the engine now; false once it has failed. */
  probe (): boolean {
    if (!this.#alive) return false
    if (automergeWorks()) return true
    this.#alive = false
    this.stop()
    this.#onFailure()
    return false
  }
}
