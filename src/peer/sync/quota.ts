import { DwError } from '../../errors.ts'

/** What one peer may make this node take in: documents, documents new here, and bytes. */
export interface QuotaLimits { documents: number, newDocuments: number, bytes: number }

export interface SyncQuotas {
  perSession: QuotaLimits
  /** A fixed window per peer that starts with the peer's first session after the last one ended. */
  perHour: QuotaLimits
}

const GiB = 1024 * 1024 * 1024

/**
 * Generous for an honest mesh (a new site pulling a large warehouse takes
 * a few sessions), tight enough that one trusted peer gone bad cannot fill
 * the disk or drown the store in a day. docs/operations.md, "Limits".
 */
export const DEFAULT_SYNC_QUOTAS: SyncQuotas = {
  perSession: { documents: 100_000, newDocuments: 50_000, bytes: 2 * GiB },
  perHour: { documents: 200_000, newDocuments: 100_000, bytes: 4 * GiB }
}

const HOUR_MS = 3_600_000

export function resolveSyncQuotas (overrides: { perSession?: Partial<QuotaLimits>, perHour?: Partial<QuotaLimits> } | undefined): SyncQuotas {
  const out: SyncQuotas = { perSession: { ...DEFAULT_SYNC_QUOTAS.perSession }, perHour: { ...DEFAULT_SYNC_QUOTAS.perHour } }
  for (const period of ['perSession', 'perHour'] as const) {
    for (const [name, value] of Object.entries(overrides?.[period] ?? {})) {
      if (!(name in out[period])) throw new Error(`limits.sync.${period}.${name} is not a quota (known: documents, newDocuments, bytes)`)
      if (!Number.isSafeInteger(value) || (value as number) <= 0) throw new Error(`limits.sync.${period}.${name} must be a positive integer, got ${JSON.stringify(value)}`)
      out[period][name as keyof QuotaLimits] = value as number
    }
  }
  return out
}

type Usage = QuotaLimits

function zero (): Usage { return { documents: 0, newDocuments: 0, bytes: 0 } }

/** The first limit `used` goes past, or undefined. */
function exceeded (used: Usage, limits: QuotaLimits): keyof QuotaLimits | undefined {
  return (['documents', 'newDocuments', 'bytes'] as const).find(k => used[k] > limits[k])
}

const NAMES: Record<keyof QuotaLimits, string> = { documents: 'documents', newDocuments: 'new documents', bytes: 'bytes' }

/** A peer over quota: its session ends, and `until` says when it may sync again (undefined: at the next session). */
export interface Throttle { reason: string, until?: number }

/**
 * Counts what each peer's sync sessions bring in. A session that goes past
 * a quota ends (what it applied stays; the checkpoint covers complete
 * batches only, so the rest comes in a later session); a peer past its
 * hourly quota is not pulled from until its window ends.
 */
export class QuotaLedger {
  readonly #limits: SyncQuotas
  readonly #now: () => number
  readonly #hours = new Map<string, { start: number, used: Usage }>()
  readonly #throttled = new Map<string, Throttle>()

  constructor (limits: SyncQuotas = DEFAULT_SYNC_QUOTAS, now: () => number = Date.now) {
    this.#limits = limits
    this.#now = now
  }

  /** Why and until when the peer may not sync, if it may not now. */
  throttled (peer: string): Throttle | undefined {
    const t = this.#throttled.get(peer)
    if (t === undefined) return undefined
    if (t.until !== undefined && t.until <= this.#now()) {
      this.#throttled.delete(peer)
      return undefined
    }
    return t
  }

  /** A meter for one session; its `charge` throws once the peer goes past a quota. */
  session (peer: string): (usage: Partial<Usage>) => void {
    const mine = zero()
    if (this.throttled(peer)?.until === undefined) this.#throttled.delete(peer)
    return (usage) => {
      const hour = this.#hour(peer)
      for (const k of ['documents', 'newDocuments', 'bytes'] as const) {
        mine[k] += usage[k] ?? 0
        hour.used[k] += usage[k] ?? 0
      }
      const perHour = exceeded(hour.used, this.#limits.perHour)
      if (perHour !== undefined) {
        this.#throw(peer, { reason: `over its hourly quota of ${this.#limits.perHour[perHour]} ${NAMES[perHour]}`, until: hour.start + HOUR_MS })
      }
      const perSession = exceeded(mine, this.#limits.perSession)
      if (perSession !== undefined) this.#throw(peer, { reason: `over its per-session quota of ${this.#limits.perSession[perSession]} ${NAMES[perSession]}` })
    }
  }

  #throw (peer: string, throttle: Throttle): never {
    this.#throttled.set(peer, throttle)
    throw new DwError('TOO_MANY_ATTEMPTS', `peer ${peer} is ${throttle.reason}`, { details: { throttle } })
  }

  #hour (peer: string): { start: number, used: Usage } {
    const now = this.#now()
    let hour = this.#hours.get(peer)
    if (hour === undefined || hour.start + HOUR_MS <= now) {
      hour = { start: now, used: zero() }
      this.#hours.set(peer, hour)
    }
    return hour
  }
}
