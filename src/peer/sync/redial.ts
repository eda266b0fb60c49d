export interface RedialOptions {
  /** First retry delay after a failed dial (default 1 s). */
  minMs: number
  /** Cap on the delay (default 60 s): two sites back in reach sync within this. */
  maxMs: number
  /** How often due peers are checked (default 250 ms). */
  tickMs: number
}

interface Init extends Partial<RedialOptions> {
  /** Peers that should be connected but are not. */
  due: () => string[]
  dial: (peerId: string) => Promise<void>
}

/**
 * Redials trusted peers that are out of reach, with exponential backoff and
 * jitter (so sites that lost a shared link do not all redial in lockstep),
 * capped so that a link that comes back is noticed within one period.
 *
 * A dial that connects backs off like one that fails: a site that does not
 * trust this node accepts the connection and then closes it, and forgetting
 * the backoff on connecting made that a dial every tick (4 a second, for
 * as long as the admins took to notice). The backoff is forgotten only when
 * a session proves the link (`reset`, once a pull has caught up) or the
 * peer was just added.
 */
export class Redialer {
  readonly #init: Init
  readonly #opts: RedialOptions
  readonly #next = new Map<string, { at: number, delay: number }>()
  readonly #inFlight = new Set<string>()
  #timer: NodeJS.Timeout | undefined

  constructor (init: Init) {
    this.#init = init
    this.#opts = { minMs: init.minMs ?? 1000, maxMs: init.maxMs ?? 60_000, tickMs: init.tickMs ?? 250 }
  }

  start (): void {
    this.#timer = setInterval(() => { this.#tick() }, this.#opts.tickMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Forget the backoff of a peer (a session with it caught up, or it was just added). */
  reset (peerId: string): void {
    this.#next.delete(peerId)
  }

  #tick (): void {
    const now = Date.now()
    for (const peerId of this.#init.due()) {
      if (this.#inFlight.has(peerId)) continue
      const plan = this.#next.get(peerId)
      if (plan !== undefined && plan.at > now) continue
      this.#inFlight.add(peerId)
      const backOff = (): void => {
        const delay = Math.min(this.#opts.maxMs, plan === undefined ? this.#opts.minMs : plan.delay * 2)
        const jitter = delay * (0.75 + Math.random() * 0.5)
        this.#next.set(peerId, { at: Date.now() + Math.min(jitter, this.#opts.maxMs), delay })
      }
      this.#init.dial(peerId).then(backOff, backOff).finally(() => {
        this.#inFlight.delete(peerId)
      })
    }
  }
}

/**
 * The pause before a live pull session is tried again on a connected peer
 * after `failures` failures in a row: 250 ms doubling to a 30 s cap.
 */
export function sessionBackoffMs (failures: number): number {
  return Math.min(30_000, 250 * 2 ** Math.min(failures, 7))
}
