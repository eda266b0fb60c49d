import type { Sublevel } from '../db.ts'
import type { BatchOp, DocIndex, DocMeta } from './doc-store.ts'
import type { RecordSummary } from './summary.ts'

/** Past every reference key ("~" sorts after lowercase hex), so those stay one range. */
const EVENT = '~e\x00'
const VOUCH = '~v\x00'
const SEQ_WIDTH = 16

/**
 * Which live records reference which blobs, as `<sha256>\0<docKey>` keys,
 * maintained in the same atomic batch as every document change. It answers
 * "may this blob be served (to a peer, to a client)?" and "which blobs are
 * garbage?" without loading documents, and costs nothing at start-up.
 *
 * Deleted records, local-only documents and documents that are not
 * records (the roster, node documents) reference nothing: their files
 * are neither served nor kept from garbage collection.
 *
 * A reference counts only if it was made while the blob was readable. Any
 * peer's record may name any hash, and the bytes of a deleted record stay
 * in the store until garbage collection: a new record naming them must not
 * make them servable again (nor tell anyone they are here). So beside the
 * references the index keeps, per blob, the order in which references came
 * and went (`~e\0<sha256>\0<seq>`, in the same batch). A reference is
 * accepted when it came while another accepted reference was live, or when
 * it is the blob's first, or when its record held an accepted reference
 * before (a restore); otherwise (the blob had been left to deleted records
 * only) it is suspect until vouched for: `~v\0<sha256>\0<docKey>`, written
 * when the bytes are uploaded here for that record or fetched from a peer
 * that would serve them. This is a node's own serving policy, not a
 * replicated verdict: honest nodes may differ, which only decides who
 * serves the bytes.
 */
/** What the index reads of a document's summary. */
export type ReferencingSummary = Pick<RecordSummary, 'deleted' | 'blobs'>

export class BlobRefs {
  readonly #db: Sublevel<string>

  constructor (db: Sublevel<string>) {
    this.#db = db
  }

  /** The DocStore index hook. */
  readonly index: DocIndex<ReferencingSummary> = (key, before, after) => {
    // Only records reference files: the roster and node documents (which
    // list the files a node holds) never keep a blob alive or make it servable.
    if (key.startsWith('mesh/') || key.startsWith('node/')) return []
    const was = new Set(referenced(before))
    const now = new Set(referenced(after))
    const ops: BatchOp[] = []
    const seq = String(after.seq).padStart(SEQ_WIDTH, '0')
    for (const sha of was) {
      if (now.has(sha)) continue
      ops.push({ type: 'del', sublevel: this.#db, key: `${sha}\x00${key}` })
      ops.push({ type: 'put', sublevel: this.#db, key: `${EVENT}${sha}\x00${seq}`, value: `d${key}` })
    }
    for (const sha of now) {
      if (was.has(sha)) continue
      ops.push({ type: 'put', sublevel: this.#db, key: `${sha}\x00${key}`, value: '' })
      ops.push({ type: 'put', sublevel: this.#db, key: `${EVENT}${sha}\x00${seq}`, value: `a${key}` })
    }
    return ops
  }

  /**
   * Whether an accepted reference of a live record names the blob: the one
   * test for serving it to a peer or a client, and for keeping it from
   * garbage collection.
   */
  async isReferenced (sha256: string): Promise<boolean> {
    return (await this.accepted(sha256)).length > 0
  }

  /** Record keys referencing the blob. */
  async referrers (sha256: string): Promise<string[]> {
    const out: string[] = []
    for await (const k of this.#db.keys({ gte: `${sha256}\x00`, lt: `${sha256}\x01` })) out.push(k.slice(sha256.length + 1))
    return out
  }

  /** Record keys whose reference to the blob is accepted (see the class comment). */
  async accepted (sha256: string): Promise<string[]> {
    const live = await this.referrers(sha256)
    if (live.length === 0) return []
    const events: Array<{ add: boolean, key: string }> = []
    for await (const v of this.#db.values({ gte: `${EVENT}${sha256}\x00`, lt: `${EVENT}${sha256}\x01` })) {
      events.push({ add: v.startsWith('a'), key: v.slice(1) })
    }
    if (events.length === 0) return live
    const vouched = new Set<string>()
    for await (const k of this.#db.keys({ gte: `${VOUCH}${sha256}\x00`, lt: `${VOUCH}${sha256}\x01` })) vouched.add(k.slice(VOUCH.length + sha256.length + 1))
    // References older than the log (made before it existed) are accepted:
    // those whose first event removes them, and live ones with no event.
    const state = new Map<string, boolean>()
    const heldAccepted = new Set<string>()
    const seen = new Set<string>()
    for (const e of events) {
      if (!seen.has(e.key) && !e.add) { state.set(e.key, true); heldAccepted.add(e.key) }
      seen.add(e.key)
    }
    for (const k of live) if (!seen.has(k)) { state.set(k, true); heldAccepted.add(k) }
    for (const e of events) {
      if (!e.add) { state.delete(e.key); continue }
      const ok = heldAccepted.size === 0 || [...state.values()].includes(true) || heldAccepted.has(e.key) || vouched.has(e.key)
      state.set(e.key, ok)
      if (ok) heldAccepted.add(e.key)
    }
    return live.filter(k => state.get(k) !== false)
  }

  /** Vouches for `keys`' references to the blob: the bytes were uploaded for them here, or a peer served them. */
  async vouch (sha256: string, keys: string[]): Promise<void> {
    if (keys.length === 0) return
    await this.#db.batch(keys.map(k => ({ type: 'put' as const, key: `${VOUCH}${sha256}\x00${k}`, value: '' })))
  }

  /** Every referenced blob hash, once each, in order. */
  async * all (): AsyncGenerator<string> {
    let last = ''
    for await (const k of this.#db.keys({ lt: '~' })) {
      const sha = k.slice(0, k.indexOf('\x00'))
      if (sha !== last) yield sha
      last = sha
    }
  }
}

function referenced (meta: DocMeta<ReferencingSummary> | undefined): string[] {
  if (meta === undefined || meta.local === true) return []
  return meta.summary.deleted ? [] : meta.summary.blobs ?? []
}
