import { DwError } from '../errors.ts'
import { clientKeyOf } from './client-address.ts'
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle.ts'
import { PasswordCheckQueue, type PasswordCheckQueueOptions } from './password-check-queue.ts'
import { PASSWORD_COST_RANGE } from './passwords.ts'

export type LoginGuardOptions = LoginThrottleOptions & PasswordCheckQueueOptions

/**
 * The limits an operator may set in config.json under "login"; each has a
 * default. `passwordCost` is not the guard's: it is the scrypt cost of
 * passwords set from then on (src/auth/passwords.ts), kept beside the
 * other login settings.
 */
export type LoginLimits = Omit<LoginGuardOptions, 'now' | 'sleep'> & { passwordCost?: number }

// The smallest sensible value of each limit: counts of failures may be 0
// (slow down from the first one), everything else must allow at least one.
const LIMIT_MINIMUM: Record<keyof LoginLimits, number> = {
  freeFailures: 0,
  lockAfter: 1,
  clientFreeFailures: 0,
  accountLockClients: 1,
  windowMs: 1,
  lockMs: 1,
  baseDelayMs: 0,
  maxDelayMs: 0,
  maxEntries: 1,
  checksAtOnce: 1,
  checksPerClient: 1,
  queuedChecks: 0,
  passwordCost: PASSWORD_COST_RANGE.min
}

/**
 * Validates config.json's "login" section.
 * @throws DwError CONFIG_INVALID naming the first bad setting.
 */
export function parseLoginLimits (value: unknown): LoginLimits {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DwError('CONFIG_INVALID', 'config.json "login" must be an object')
  }
  for (const [name, limit] of Object.entries(value)) {
    const minimum = LIMIT_MINIMUM[name as keyof LoginLimits] as number | undefined
    if (minimum === undefined) {
      throw new DwError('CONFIG_INVALID', `config.json "login.${name}" is not a setting; known: ${Object.keys(LIMIT_MINIMUM).join(', ')}`)
    }
    if (!Number.isSafeInteger(limit) || (limit as number) < minimum) {
      throw new DwError('CONFIG_INVALID', `config.json "login.${name}" must be a whole number of at least ${minimum}`)
    }
    if (name === 'passwordCost' && (limit as number) > PASSWORD_COST_RANGE.max) {
      throw new DwError('CONFIG_INVALID', `config.json "login.passwordCost" must be from ${PASSWORD_COST_RANGE.min} to ${PASSWORD_COST_RANGE.max} (log2 of scrypt's N; 17, the default, takes 128 MiB a check)`)
    }
  }
  return value as LoginLimits
}

/**
 * Everything that stands between an unauthenticated request and a password
 * check: the throttle (per client and username: delays and locks) and the
 * queue (per client and in total: how many checks, in what order).
 */
export class LoginGuard {
  readonly #throttle: LoginThrottle
  readonly #queue: PasswordCheckQueue

  constructor (options: LoginGuardOptions = {}) {
    this.#throttle = new LoginThrottle(options)
    this.#queue = new PasswordCheckQueue(options)
  }

  /**
   * Runs one login attempt's `check` if the throttle and the queue let it,
   * and records how it went. `check` resolves what the login yields, or
   * undefined for a failed login (wrong password, unknown or unusable
   * account: all count the same).
   * @param client the request's address, as the socket reports it.
   * @throws DwError TOO_MANY_ATTEMPTS (with `details.retryAfterSeconds`)
   *   when the attempt is refused; then `check` never ran.
   */
  async attempt<T> (username: string, client: unknown, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const key = clientKeyOf(client)
    const wait = this.#throttle.begin(username, key)
    let result: T | undefined
    try {
      result = await this.#queue.run(key, check, wait)
    } catch (err) {
      this.#throttle.abandon(username, key)
      throw err
    }
    if (result === undefined) this.#throttle.failure(username, key)
    else this.#throttle.success(username, key)
    return result
  }
}
