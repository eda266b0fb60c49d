import { createHash, randomBytes } from 'node:crypto'
import type { Sublevel } from '../db.ts'

/** What the store keeps per session, keyed by the hex sha256 of its token. */
export interface SessionRecord {
  userId: string
  /** Milliseconds since the epoch. */
  createdAt: number
  /** Milliseconds since the epoch; refreshed at most once a minute. */
  lastSeenAt: number
}

export interface SessionStoreOptions {
  /** A session unused for this long expires. Default 12 hours. */
  idleTimeoutMs?: number
  /** A session expires this long after it was issued, used or not. Default 7 days. */
  absoluteLifetimeMs?: number
  /** Clock in milliseconds since the epoch; injectable for tests. */
  now?: () => number
}

export interface IssuedSession {
  /** Opaque bearer token (32 random bytes, base64url). Shown once, never stored. */
  token: string
  /** When the session expires if left idle (ms since the epoch). */
  expiresAt: number
}

const HOUR = 60 * 60 * 1000
const DEFAULT_IDLE_TIMEOUT_MS = 12 * HOUR
const DEFAULT_ABSOLUTE_LIFETIME_MS = 7 * 24 * HOUR
// Refreshing lastSeenAt on every request would turn every read into a write.
const REFRESH_INTERVAL_MS = 60 * 1000
const TOKEN_BYTES = 32
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/

/**
 * Login sessions on a LevelDB sublevel. Only a hash of each token is stored,
 * so a copy of the database (or a backup) holds no usable tokens; and lookup
 * by hash means response timing says nothing about how much of a guessed
 * token matched.
 */
export class SessionStore {
  readonly #db: Sublevel<SessionRecord>
  readonly #idleTimeoutMs: number
  readonly #absoluteLifetimeMs: number
  readonly #now: () => number
  #tail: Promise<unknown> = Promise.resolve()

  constructor (db: Sublevel<SessionRecord>, options: SessionStoreOptions = {}) {
    this.#db = db
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    this.#absoluteLifetimeMs = options.absoluteLifetimeMs ?? DEFAULT_ABSOLUTE_LIFETIME_MS
    this.#now = options.now ?? Date.now
  }

  /** Starts a session for `userId` and returns its token. */
  async issue (userId: string): Promise<IssuedSession> {
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    const now = this.#now()
    await this.#db.put(tokenKey(token), { userId, createdAt: now, lastSeenAt: now })
    return { token, expiresAt: now + Math.min(this.#idleTimeoutMs, this.#absoluteLifetimeMs) }
  }

  /**
   * Resolves a token to its user, or undefined if the token is malformed,
   * unknown, revoked or expired (expired sessions are deleted when seen).
   */
  async verify (token: unknown): Promise<{ userId: string } | undefined> {
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return undefined
    const key = tokenKey(token)
    const record = await this.#db.get(key)
    if (!isSessionRecord(record)) return undefined
    const now = this.#now()
    if (this.#expired(record, now)) {
      await this.#exclusive(() => this.#db.del(key))
      return undefined
    }
    if (now - record.lastSeenAt >= REFRESH_INTERVAL_MS) {
      await this.#exclusive(async () => {
        // Re-read under the lock: a revoke that ran since our read must not
        // be undone by writing the record back.
        const current = await this.#db.get(key)
        if (isSessionRecord(current) && current.lastSeenAt < now) {
          await this.#db.put(key, { ...current, lastSeenAt: now })
        }
      })
    }
    return { userId: record.userId }
  }

  /** Ends one session. Unknown or malformed tokens are ignored. */
  async revoke (token: string): Promise<void> {
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return
    await this.#exclusive(() => this.#db.del(tokenKey(token)))
  }

  /** Ends every session of a user (password change, account disabled). */
  async revokeAllFor (userId: string): Promise<number> {
    return await this.#deleteWhere((record) => record.userId === userId)
  }

  /** Deletes sessions that expired without being seen again. */
  async purgeExpired (): Promise<number> {
    const now = this.#now()
    return await this.#deleteWhere((record) => this.#expired(record, now))
  }

  #expired (record: SessionRecord, now: number): boolean {
    return now - record.lastSeenAt >= this.#idleTimeoutMs || now - record.createdAt >= this.#absoluteLifetimeMs
  }

  // Sessions are few per node, so a scan beats keeping a per-user index in step.
  async #deleteWhere (predicate: (record: SessionRecord) => boolean): Promise<number> {
    return await this.#exclusive(async () => {
      const keys: string[] = []
      for await (const [key, record] of this.#db.iterator()) {
        if (!isSessionRecord(record) || predicate(record)) keys.push(key)
      }
      if (keys.length > 0) await this.#db.batch(keys.map((key) => ({ type: 'del' as const, key })))
      return keys.length
    })
  }

  // Serialises this store's writes, so a refresh never resurrects a session
  // deleted between its read and its write.
  #exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn)
    this.#tail = run.catch(() => {})
    return run
  }
}

function tokenKey (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

function isSessionRecord (value: unknown): value is SessionRecord {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Partial<SessionRecord>
  return typeof record.userId === 'string' && typeof record.createdAt === 'number' && typeof record.lastSeenAt === 'number'
}
