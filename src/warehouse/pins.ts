import { randomUUID } from 'node:crypto'
import type { Sublevel } from '../db.ts'
import type { DocMeta, DocStore } from '../crdt/doc-store.ts'
import type { RecordSummary } from '../crdt/summary.ts'
import { isRecordId } from '../crdt/keys.ts'
import { DwError } from '../errors.ts'

export const PinTargets = ['dataset', 'model', 'tag', 'kind'] as const
export type PinTarget = typeof PinTargets[number]

/** A standing order to keep the files of matching records on this node. */
export interface Pin { id: string, target: PinTarget, value: string, createdAt: string, by: string }

/** What pins ask the blob layer for. */
export interface BlobWanter { want: (sha256: string, size: number) => Promise<void> }

/**
 * Pins: a dataset, a model, every record with a tag, or a whole record kind.
 * Files of matching records are fetched in the background as soon as their
 * metadata arrives (pins are local to this node; they do not replicate).
 */
export class Pins {
  readonly #db: Sublevel<Pin>
  readonly #docs: DocStore<RecordSummary>
  readonly #wanter: BlobWanter
  readonly #pins = new Map<string, Pin>()
  readonly #onChange = (event: { key: string, meta: DocMeta<RecordSummary> }): void => { void this.#consider(event.key, event.meta) }

  private constructor (db: Sublevel<Pin>, docs: DocStore<RecordSummary>, wanter: BlobWanter) {
    this.#db = db
    this.#docs = docs
    this.#wanter = wanter
  }

  static async open (db: Sublevel<Pin>, docs: DocStore<RecordSummary>, wanter: BlobWanter): Promise<Pins> {
    const pins = new Pins(db, docs, wanter)
    for await (const pin of db.values()) pins.#pins.set(pin.id, pin)
    docs.on('change', pins.#onChange)
    return pins
  }

  /** Stops following the store: a node that stops leaves no listener behind. */
  stop (): void {
    this.#docs.off('change', this.#onChange)
  }

  list (): Pin[] {
    return [...this.#pins.values()]
  }

  /** Adds a pin, or returns the existing one for the same target and value (`created` false). */
  async add (target: PinTarget, value: string, by: string): Promise<{ pin: Pin, created: boolean }> {
    if ((target === 'dataset' || target === 'model') && !isRecordId(value)) throw new DwError('INVALID_INPUT', `a ${target} pin needs the ${target}'s id`)
    if (target === 'kind' && !['dataset', 'model', 'report'].includes(value)) throw new DwError('INVALID_INPUT', 'a kind pin is one of dataset, model, report')
    const existing = this.list().find(p => p.target === target && p.value === value)
    if (existing !== undefined) return { pin: existing, created: false }
    const pin: Pin = { id: randomUUID(), target, value, createdAt: new Date().toISOString(), by }
    await this.#db.put(pin.id, pin)
    this.#pins.set(pin.id, pin)
    void this.fetchMatching()
    return { pin, created: true }
  }

  async remove (id: string): Promise<void> {
    if (!this.#pins.has(id)) throw new DwError('NOT_FOUND', `no pin ${id}`)
    await this.#db.del(id)
    this.#pins.delete(id)
  }

  /** Queues the files of every record any pin matches (at start and when a pin is added). */
  async fetchMatching (): Promise<void> {
    if (this.#pins.size === 0) return
    for (const kind of ['dataset', 'model', 'report']) {
      for await (const [key, meta] of this.#docs.scan(`${kind}/`)) await this.#consider(key, meta)
    }
  }

  matches (key: string, summary: RecordSummary): boolean {
    const kind = key.slice(0, key.indexOf('/'))
    const id = key.slice(kind.length + 1)
    for (const pin of this.#pins.values()) {
      if (pin.target === 'kind' && pin.value === kind) return true
      if ((pin.target === 'dataset' || pin.target === 'model') && pin.target === kind && pin.value === id) return true
      if (pin.target === 'tag' && summary.tags.includes(pin.value)) return true
    }
    return false
  }

  async #consider (key: string, meta: DocMeta<RecordSummary>): Promise<void> {
    const s = meta.summary
    if (s.deleted || s.blobs === undefined || s.blobs.length === 0 || !this.matches(key, s)) return
    for (const [i, sha] of s.blobs.entries()) await this.#wanter.want(sha, s.sizes?.[i] ?? 0)
  }
}
