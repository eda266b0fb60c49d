import { createHash } from 'node:crypto'
import type { Sublevel } from '../db.ts'

/** A document a peer sent that broke a limit: kept out, and listed for an admin. */
export interface QuarantineEntry {
  /** sha256 of the bytes as received: the same bytes sent again are known at once. */
  id: string
  key: string
  /** The peer that sent it; absent when it came from changes parked here earlier. */
  peer?: string
  reason: string
  /** Size of the bytes received. */
  size: number
  firstAt: string
  lastAt: string
  /** Times these bytes arrived. */
  seen: number
}

/** Entries kept at most: past it, the oldest goes (its bytes would be checked again if they came back). */
const MAX_ENTRIES = 1000

export function quarantineId (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * Documents kept out of the store because loading them broke a limit. The
 * bytes themselves are not kept (they are the hazard): an entry records
 * what came, from whom and why, so the same bytes are refused again without
 * being loaded, and an admin can see and drop it.
 */
export class Quarantine {
  readonly #db: Sublevel<QuarantineEntry>
  readonly #onAdd: (entry: QuarantineEntry) => void
  #count = -1

  constructor (db: Sublevel<QuarantineEntry>, onAdd: (entry: QuarantineEntry) => void = () => {}) {
    this.#db = db
    this.#onAdd = onAdd
  }

  async get (id: string): Promise<QuarantineEntry | undefined> {
    return await this.#db.get(id)
  }

  /** Which of these ids are quarantined; each that is counts as seen again. */
  async known (ids: string[]): Promise<boolean[]> {
    if (ids.length === 0) return []
    const entries = await this.#db.getMany(ids)
    const now = new Date().toISOString()
    const again = entries.filter(e => e !== undefined).map(e => ({ type: 'put' as const, key: e.id, value: { ...e, seen: e.seen + 1, lastAt: now } }))
    if (again.length > 0) await this.#db.batch(again)
    return entries.map(e => e !== undefined)
  }

  async add (entry: Omit<QuarantineEntry, 'firstAt' | 'lastAt' | 'seen'>): Promise<QuarantineEntry> {
    const now = new Date().toISOString()
    const full: QuarantineEntry = { ...entry, firstAt: now, lastAt: now, seen: 1 }
    if (await this.count() >= MAX_ENTRIES) await this.#dropOldest()
    await this.#db.put(full.id, full)
    this.#count += 1
    this.#onAdd(full)
    return full
  }

  /** Oldest first. */
  async list (): Promise<QuarantineEntry[]> {
    const out: QuarantineEntry[] = []
    for await (const entry of this.#db.values()) out.push(entry)
    return out.sort((a, b) => a.firstAt.localeCompare(b.firstAt))
  }

  async count (): Promise<number> {
    if (this.#count < 0) {
      let n = 0
      for await (const _ of this.#db.keys()) n += 1
      this.#count = n
    }
    return this.#count
  }

  /** False when there was no such entry. */
  async drop (id: string): Promise<boolean> {
    if (await this.#db.get(id) === undefined) return false
    await this.#db.del(id)
    this.#count -= 1
    return true
  }

  async #dropOldest (): Promise<void> {
    const oldest = (await this.list())[0]
    if (oldest !== undefined) await this.drop(oldest.id)
  }
}
