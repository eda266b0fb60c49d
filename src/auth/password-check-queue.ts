import { setTimeout as delay } from 'node:timers/promises'
import type { DwError } from '../errors.ts'
import { refusal } from './refusal.ts'

export interface PasswordCheckQueueOptions {
  /** Checks running at once, all clients together. Default 2, as many as Users lets run (each costs ~128 MiB). */
  checksAtOnce?: number
  /** Checks one client may have admitted (waiting or running) at once; more are refused. Default 1. */
  checksPerClient?: number
  /** Checks waiting for a turn, all clients together; more are refused. Default 32. */
  queuedChecks?: number
  /** Waits `ms` milliseconds; injectable for tests. */
  sleep?: (ms: number) => Promise<void>
}

/**
 * Admits unauthenticated password checks and runs them fairly. A scrypt
 * check costs ~128 MiB and most of a second, so a queue of them is how a
 * flood turns into a lock-out: with one first-come line, 40 requests in
 * flight made a real login wait 24 s. Here each client (see
 * `clientKeyOf`) may have only `checksPerClient` checks admitted; beyond
 * that, and beyond `queuedChecks` waiting in all, a request is refused at
 * once, before any hashing. Waiting checks take turns round-robin by
 * client, so however many requests one address sends, a check from another
 * address waits behind at most one check of each client already waiting.
 */
export class PasswordCheckQueue {
  readonly #checksAtOnce: number
  readonly #checksPerClient: number
  readonly #queuedChecks: number
  readonly #sleep: (ms: number) => Promise<void>
  #running = 0
  #queued = 0
  readonly #admitted = new Map<string, number>()
  /** Waiting checks per client; the Map's order is the round-robin order. */
  readonly #waiting = new Map<string, Array<() => void>>()

  constructor (options: PasswordCheckQueueOptions = {}) {
    this.#checksAtOnce = options.checksAtOnce ?? 2
    this.#checksPerClient = options.checksPerClient ?? 1
    this.#queuedChecks = options.queuedChecks ?? 32
    this.#sleep = options.sleep ?? ((ms) => delay(ms))
  }

  /**
   * Runs `check` for `client` when its turn comes, after waiting `delayMs`
   * (a throttle's penalty: the wait holds the client's admission, not a
   * turn, so it slows that client without idling the node).
   * @throws DwError TOO_MANY_ATTEMPTS with `details.retryAfterSeconds` and
   *   `details.limit` ('client' or 'node') when the check is refused; then
   *   `check` never ran.
   */
  async run<T> (client: string, check: () => Promise<T>, delayMs = 0): Promise<T> {
    const admitted = this.#admitted.get(client) ?? 0
    if (admitted >= this.#checksPerClient) throw busy('client', 'Another login from your address is being checked; try again in a moment.')
    this.#admitted.set(client, admitted + 1)
    try {
      if (delayMs > 0) await this.#sleep(delayMs)
      await this.#turn(client)
      try {
        return await check()
      } finally {
        this.#next()
      }
    } finally {
      const left = (this.#admitted.get(client) ?? 1) - 1
      if (left > 0) this.#admitted.set(client, left)
      else this.#admitted.delete(client)
    }
  }

  #turn (client: string): Promise<void> | undefined {
    if (this.#running < this.#checksAtOnce) {
      this.#running++
      return undefined
    }
    if (this.#queued >= this.#queuedChecks) throw busy('node', 'Too many logins are waiting to be checked; try again in a moment.')
    this.#queued++
    return new Promise(resolve => {
      const line = this.#waiting.get(client)
      if (line !== undefined) line.push(resolve)
      else this.#waiting.set(client, [resolve])
    })
  }

  // Hands a finished check's turn to the first client in line, which then
  // goes to the back of the line if it has more checks waiting.
  #next (): void {
    const first = this.#waiting.entries().next()
    if (first.done === true) {
      this.#running--
      return
    }
    const [client, line] = first.value
    const wake = line.shift() as () => void
    this.#waiting.delete(client)
    if (line.length > 0) this.#waiting.set(client, line)
    this.#queued--
    wake()
  }
}

function busy (limit: 'client' | 'node', message: string): DwError {
  return refusal(message, { retryAfterSeconds: 1, limit })
}
