import { normaliseUsername } from '../crdt/records/user.ts'
import { setTimeout as delay } from 'node:timers/promises'
import { DwError } from '../errors.ts'

export interface LoginThrottleOptions {
  /** Failures allowed without delay. Default 5. */
  freeFailures?: number
  /** Failures that lock the username. Default 10. */
  lockAfter?: number
  /** Failures further apart than this do not add up. Default 15 minutes. */
  windowMs?: number
  /** How long a lock lasts. Default 15 minutes. */
  lockMs?: number
  /** Delay once the free failures are used up; doubles per failure. Default 250 ms. */
  baseDelayMs?: number
  /** Ceiling of the delay. Default 2 s. */
  maxDelayMs?: number
  /** Most usernames tracked at once (and, separately, most locks). Default 10,000. */
  maxEntries?: number
  /** Clock in milliseconds since the epoch; injectable for tests. */
  now?: () => number
  /** Waits `ms` milliseconds; injectable for tests. */
  sleep?: (ms: number) => Promise<void>
}

interface Attempts {
  failures: number
  /** Attempts that passed `before` and have not yet reported back. */
  inFlight: number
  lastAt: number
}

const MINUTE = 60 * 1000
// Valid usernames are far shorter; the cap bounds memory per key.
const MAX_KEY_LENGTH = 256

/**
 * Slows down and then locks password guessing per username, in memory.
 * Keys are lower-cased usernames whether or not the account exists, so the
 * throttle's behaviour does not reveal which usernames are real.
 *
 * Use: `await throttle.before(name)`, check the password, then
 * `throttle.success(name)` or `throttle.failure(name)`.
 */
export class LoginThrottle {
  readonly #freeFailures: number
  readonly #lockAfter: number
  readonly #windowMs: number
  readonly #lockMs: number
  readonly #baseDelayMs: number
  readonly #maxDelayMs: number
  readonly #maxEntries: number
  readonly #now: () => number
  readonly #sleep: (ms: number) => Promise<void>
  readonly #attempts = new Map<string, Attempts>()
  // Locks live apart from the counters so that a flood of random usernames
  // (one failure each) evicts only other counters, never a lock.
  readonly #locks = new Map<string, number>()

  constructor (options: LoginThrottleOptions = {}) {
    this.#freeFailures = options.freeFailures ?? 5
    this.#lockAfter = options.lockAfter ?? 10
    this.#windowMs = options.windowMs ?? 15 * MINUTE
    this.#lockMs = options.lockMs ?? 15 * MINUTE
    this.#baseDelayMs = options.baseDelayMs ?? 250
    this.#maxDelayMs = options.maxDelayMs ?? 2000
    this.#maxEntries = options.maxEntries ?? 10_000
    this.#now = options.now ?? Date.now
    this.#sleep = options.sleep ?? ((ms) => delay(ms))
  }

  /** Number of usernames currently tracked (counters and locks). */
  get size (): number {
    return this.#attempts.size + this.#locks.size
  }

  /**
   * The delay the next attempt for `username` must wait, in milliseconds.
   * @throws DwError TOO_MANY_ATTEMPTS with `details.retryAfterSeconds` while
   *   the username is locked.
   */
  check (username: string): number {
    const key = keyOf(username)
    const now = this.#now()
    const lockedUntil = this.#locks.get(key)
    if (lockedUntil !== undefined) {
      if (now < lockedUntil) throw this.#tooMany(lockedUntil - now)
      this.#locks.delete(key)
    }
    const entry = this.#current(key, now)
    const pending = entry === undefined ? 0 : entry.failures + entry.inFlight
    // Attempts still in flight count as failures until they report back, so
    // firing guesses in parallel cannot slip past the lock.
    if (pending >= this.#lockAfter) throw this.#tooMany(this.#maxDelayMs)
    if (pending < this.#freeFailures) return 0
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (pending - this.#freeFailures))
  }

  /**
   * Call before checking a password: throws if `username` is locked, else
   * waits the delay its recent failures earned. Follow with exactly one of
   * {@link success} or {@link failure}.
   */
  async before (username: string): Promise<void> {
    const wait = this.check(username)
    const key = keyOf(username)
    const now = this.#now()
    const entry = this.#current(key, now) ?? { failures: 0, inFlight: 0, lastAt: now }
    entry.inFlight++
    entry.lastAt = now
    this.#store(key, entry)
    if (wait > 0) await this.#sleep(wait)
  }

  /** Records a failed attempt; the `lockAfter`-th in a row locks the username. */
  failure (username: string): void {
    const key = keyOf(username)
    const now = this.#now()
    if ((this.#locks.get(key) ?? 0) > now) return
    const entry = this.#current(key, now) ?? { failures: 0, inFlight: 0, lastAt: now }
    entry.inFlight = Math.max(0, entry.inFlight - 1)
    entry.failures++
    entry.lastAt = now
    if (entry.failures >= this.#lockAfter) {
      // The count starts over once the lock ends.
      this.#attempts.delete(key)
      this.#locks.delete(key)
      this.#locks.set(key, now + this.#lockMs)
      evictOldest(this.#locks, this.#maxEntries)
      return
    }
    this.#store(key, entry)
  }

  /** Records a successful login: forgets the username's failures. */
  success (username: string): void {
    this.#attempts.delete(keyOf(username))
  }

  /** Alias of {@link failure}. */
  recordFailure (username: string): void {
    this.failure(username)
  }

  /** Alias of {@link success}. */
  recordSuccess (username: string): void {
    this.success(username)
  }

  #current (key: string, now: number): Attempts | undefined {
    const entry = this.#attempts.get(key)
    if (entry !== undefined && now - entry.lastAt > this.#windowMs) {
      this.#attempts.delete(key)
      return undefined
    }
    return entry
  }

  // Re-inserting keeps the Map in least-recently-touched order for eviction.
  #store (key: string, entry: Attempts): void {
    this.#attempts.delete(key)
    this.#attempts.set(key, entry)
    evictOldest(this.#attempts, this.#maxEntries)
  }

  #tooMany (retryAfterMs: number): DwError {
    const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000))
    return new DwError('TOO_MANY_ATTEMPTS', `Too many failed login attempts; try again in ${retryAfterSeconds} s.`, {
      details: { retryAfterSeconds }
    })
  }
}

/**
 * The same normalisation the login itself uses (NFKC, then lower case):
 * look-alikes such as full-width letters that sign in to one account share
 * its budget of failures.
 */
function keyOf (username: string): string {
  return normaliseUsername(String(username)).slice(0, MAX_KEY_LENGTH)
}

function evictOldest (map: Map<string, unknown>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next()
    if (oldest.done === true) return
    map.delete(oldest.value)
  }
}
