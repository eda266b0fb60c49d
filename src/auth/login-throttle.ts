import { normaliseUsername } from '../crdt/records/user.ts'
import type { DwError } from '../errors.ts'
import { evictOldest, FailureCounts } from './failure-counts.ts'
import { refusal } from './refusal.ts'

export interface LoginThrottleOptions {
  /** Failures one client may make on one username without delay. Default 5. */
  freeFailures?: number
  /** Failures that lock one username for that client. Default 10. */
  lockAfter?: number
  /** Failures one client may make over all usernames without delay. Default 20. */
  clientFreeFailures?: number
  /** Clients locked out of one username at the same time that lock it for every client. Default 10. */
  accountLockClients?: number
  /** Failures further apart than this do not add up. Default 15 minutes. */
  windowMs?: number
  /** How long a lock lasts. Default 15 minutes. */
  lockMs?: number
  /** Delay once the free failures are used up; doubles per failure. Default 250 ms. */
  baseDelayMs?: number
  /** Ceiling of the delay. Default 2 s. */
  maxDelayMs?: number
  /** Most keys tracked at once, for each kind of counter and of lock. Default 10,000. */
  maxEntries?: number
  /** Clock in milliseconds since the epoch; injectable for tests. */
  now?: () => number
}

const MINUTE = 60 * 1000
// Valid usernames are far shorter; the cap bounds memory per key.
const MAX_KEY_LENGTH = 256

/**
 * Slows down and then locks password guessing, in memory. Budgets belong to
 * a (client, username) pair, so guesses from one address lock that address
 * out of the account and nobody else (keyed on the name alone, anyone could
 * keep `admin` locked out of HTTP login from anywhere). Two wider limits stop a
 * spread attack: one client's failures over all usernames slow that client,
 * and an account that many clients are locked out of at once is locked for
 * every client (it takes that many addresses, so no single one can do it).
 *
 * Usernames count whether or not the account exists, so the throttle's
 * behaviour does not reveal which usernames are real. Clients are keys made
 * by `clientKeyOf` (client-address.ts).
 *
 * Use: `const wait = throttle.begin(name, client)`, wait, check the
 * password, then exactly one of `success`, `failure` or `abandon`.
 */
export class LoginThrottle {
  readonly #freeFailures: number
  readonly #lockAfter: number
  readonly #clientFreeFailures: number
  readonly #accountLockClients: number
  readonly #lockMs: number
  readonly #baseDelayMs: number
  readonly #maxDelayMs: number
  readonly #maxEntries: number
  readonly #now: () => number
  readonly #pairs: FailureCounts
  readonly #clients: FailureCounts
  // Locks live apart from the counters so that a flood of random usernames
  // (one failure each) evicts only other counters, never a lock.
  readonly #pairLocks = new Map<string, number>()
  readonly #accountLocks = new Map<string, number>()
  /** Per username, the clients currently locked out of it and until when. */
  readonly #lockedClients = new Map<string, Map<string, number>>()

  constructor (options: LoginThrottleOptions = {}) {
    this.#freeFailures = options.freeFailures ?? 5
    this.#lockAfter = options.lockAfter ?? 10
    this.#clientFreeFailures = options.clientFreeFailures ?? 20
    this.#accountLockClients = options.accountLockClients ?? 10
    this.#lockMs = options.lockMs ?? 15 * MINUTE
    this.#baseDelayMs = options.baseDelayMs ?? 250
    this.#maxDelayMs = options.maxDelayMs ?? 2000
    this.#maxEntries = options.maxEntries ?? 10_000
    this.#now = options.now ?? Date.now
    const windowMs = options.windowMs ?? 15 * MINUTE
    this.#pairs = new FailureCounts(windowMs, this.#maxEntries)
    this.#clients = new FailureCounts(windowMs, this.#maxEntries)
  }

  /** Number of keys currently tracked (counters and locks). */
  get size (): number {
    return this.#pairs.size + this.#clients.size + this.#pairLocks.size + this.#accountLocks.size + this.#lockedClients.size
  }

  /**
   * The delay the next attempt on `username` from `client` must wait, in
   * milliseconds.
   * @throws DwError TOO_MANY_ATTEMPTS with `details.retryAfterSeconds` while
   *   the username is locked for this client.
   */
  check (username: string, client: string): number {
    const account = keyOf(username)
    const pair = pairKey(client, account)
    const now = this.#now()
    const lockedUntil = Math.max(this.#until(this.#pairLocks, pair, now), this.#until(this.#accountLocks, account, now))
    if (lockedUntil > now) throw this.#tooMany(lockedUntil - now)
    const pending = this.#pairs.pending(pair, now)
    if (pending >= this.#lockAfter) throw this.#tooMany(this.#maxDelayMs)
    return Math.max(this.#delay(pending, this.#freeFailures), this.#delay(this.#clients.pending(client, now), this.#clientFreeFailures))
  }

  /**
   * {@link check}, and counts the attempt as in flight until it ends.
   * @returns the delay to wait before checking the password.
   */
  begin (username: string, client: string): number {
    const wait = this.check(username, client)
    const now = this.#now()
    this.#pairs.begin(pairKey(client, keyOf(username)), now)
    this.#clients.begin(client, now)
    return wait
  }

  /** A wrong password (or unknown name); the `lockAfter`-th in a row locks the pair. */
  failure (username: string, client: string): void {
    const account = keyOf(username)
    const pair = pairKey(client, account)
    const now = this.#now()
    this.#clients.end(client, now, true)
    // Attempts that were in flight when the lock fell add nothing to it.
    if (this.#until(this.#pairLocks, pair, now) > now) return
    if (this.#pairs.end(pair, now, true) >= this.#lockAfter) {
      // The count starts over once the lock ends.
      this.#pairs.forget(pair)
      this.#lock(account, client, now)
    }
  }

  /**
   * A successful login forgets the pair's failures. The client's failures
   * over all usernames stay: logging in to an account of one's own must
   * not wipe the record of guessing at others.
   */
  success (username: string, client: string): void {
    this.#clients.end(client, this.#now(), false)
    this.#pairs.forget(pairKey(client, keyOf(username)))
  }

  /** An attempt that began but checked no password (refused by the queue, or an error). */
  abandon (username: string, client: string): void {
    const now = this.#now()
    this.#clients.end(client, now, false)
    this.#pairs.end(pairKey(client, keyOf(username)), now, false)
  }

  #lock (account: string, client: string, now: number): void {
    const until = now + this.#lockMs
    this.#pairLocks.set(pairKey(client, account), until)
    evictOldest(this.#pairLocks, this.#maxEntries)
    const locked = this.#lockedClients.get(account) ?? new Map<string, number>()
    for (const [other, end] of locked) if (end <= now) locked.delete(other)
    locked.set(client, until)
    this.#lockedClients.delete(account)
    if (locked.size >= this.#accountLockClients) {
      this.#accountLocks.delete(account)
      this.#accountLocks.set(account, until)
      evictOldest(this.#accountLocks, this.#maxEntries)
    } else {
      this.#lockedClients.set(account, locked)
      evictOldest(this.#lockedClients, this.#maxEntries)
    }
  }

  /** When the lock on `key` ends; 0 when there is none (an expired one is dropped). */
  #until (locks: Map<string, number>, key: string, now: number): number {
    const until = locks.get(key)
    if (until === undefined) return 0
    if (until > now) return until
    locks.delete(key)
    return 0
  }

  #delay (pending: number, free: number): number {
    if (pending < free) return 0
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (pending - free))
  }

  #tooMany (retryAfterMs: number): DwError {
    const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000))
    return refusal(`Too many failed login attempts; try again in ${retryAfterSeconds} s.`, { retryAfterSeconds })
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

// Client keys hold no spaces, so the first space splits a pair unambiguously.
function pairKey (client: string, account: string): string {
  return `${client} ${account}`
}
