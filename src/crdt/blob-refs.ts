import type { Sublevel } from '../db.ts'
import type { BatchOp, DocMeta } from './doc-store.ts'
import type { RecordSummary } from './summary.ts'

/**
 * Which live records reference which blobs, as `<sha256>\0<docKey>` keys,
 * maintained in the same atomic batch as every document change. It answers
 * "may a peer fetch this blob?" and "which blobs are garbage?" without
 * loading documents, and costs nothing at start-up.
 *
 * Deleted records and local-only documents reference nothing: their files
 * are neither served to peers nor kept from garbage collection.
 */
export class BlobRefs {
  readonly #db: Sublevel<string>

  constructor (db: Sublevel<string>) {
    this.#db = db
  }

  /** The DocStore index hook. */
  readonly index = (key: string, before: DocMeta | undefined, after: DocMeta): BatchOp[] => {
    const was = new Set(referenced(before))
    const now = new Set(referenced(after))
    const ops: BatchOp[] = []
    for (const sha of was) if (!now.has(sha)) ops.push({ type: 'del', sublevel: this.#db, key: `${sha}\x00${key}` })
    for (const sha of now) if (!was.has(sha)) ops.push({ type: 'put', sublevel: this.#db, key: `${sha}\x00${key}`, value: '' })
    return ops
  }

  async isReferenced (sha256: string): Promise<boolean> {
    for await (const _ of this.#db.keys({ gte: `${sha256}\x00`, lt: `${sha256}\x01`, limit: 1 })) return true
    return false
  }

  /** Record keys referencing the blob. */
  async referrers (sha256: string): Promise<string[]> {
    const out: string[] = []
    for await (const k of this.#db.keys({ gte: `${sha256}\x00`, lt: `${sha256}\x01` })) out.push(k.slice(sha256.length + 1))
    return out
  }

  /** Every referenced blob hash, once each, in order. */
  async * all (): AsyncGenerator<string> {
    let last = ''
    for await (const k of this.#db.keys()) {
      const sha = k.slice(0, k.indexOf('\x00'))
      if (sha !== last) yield sha
      last = sha
    }
  }
}

function referenced (meta: DocMeta | undefined): string[] {
  if (meta === undefined || meta.local === true) return []
  const s = meta.summary as unknown as RecordSummary
  return s.deleted ? [] : s.blobs ?? []
}
