import type { BlobStore } from '../blobs/blob-store.ts'
import type { BlobRefs } from '../crdt/blob-refs.ts'
import type { DocChangeEvent, DocStore } from '../crdt/doc-store.ts'
import { isRecordKind } from '../crdt/keys.ts'
import { asMap } from '../crdt/shape.ts'
import type { RecordSummary } from '../crdt/summary.ts'
import { isDwError } from '../errors.ts'
import type { Startable } from '../lifecycle.ts'
import { nodeDocIdOf, nodeDocKey } from '../trust/roster.ts'

/** Holdings written in one change at most: a node with very many files publishes them over several seconds. */
const MAX_PER_CHANGE = 5000
const SHA256 = /^[0-9a-f]{64}$/

export interface HoldingsInit {
  self: string
  /** The author of this node's own changes to its node document: its bootstrap admin. */
  author: string
  docs: DocStore<RecordSummary>
  store: BlobStore
  refs: BlobRefs
  /** Whether this node may write now: a non-revoked member of its mesh's roster. */
  mayPublish: () => Promise<boolean>
  /** The roster's key, when this node belongs to a mesh (a roster change may make it a member). */
  rosterKey: () => string | undefined
  /** At most one change to the node document per this many ms (default 1000). */
  publishMs?: number
  onError?: (err: unknown) => void
}

/**
 * Which sites hold which files, replicated. Each node publishes the files
 * it holds (blobs here for an accepted reference of a live record) in its
 * own document, `node/<id>` ({kind:'node', id, peerId, holdings:
 * {<sha256>: <size>}}), written only by that node (src/trust/rules.ts), and
 * reads every node's document to know where each file is.
 *
 * Publishing is batched: a blob that arrives or goes is marked, and at most
 * one change a second carries every mark since. History grows by one entry
 * per blob that comes or goes, never by a rewrite of the whole list. At
 * start the document is reconciled with the store, so a crash between a
 * blob's arrival and its publication is repaired.
 *
 * The document is a plain map of fields, so others (a node's status) can
 * be added beside `holdings` later.
 */
export class Holdings implements Startable {
  readonly #o: HoldingsInit
  readonly #key: string
  readonly #publishMs: number
  /** Blobs to check and publish: a known size, null for known absent, undefined to check the store. */
  readonly #dirty = new Map<string, number | null | undefined>()
  /** sha256 -> peer ids whose node documents list it. */
  readonly #bySha = new Map<string, Set<string>>()
  /** peer id -> what its node document lists. */
  readonly #byNode = new Map<string, Map<string, number>>()
  readonly #stale = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> | undefined
  #reading: Promise<void> = Promise.resolve()
  #reconciled = false
  /** Not a member of the roster (yet): publishing waits for a roster change. */
  #blocked = false
  #stopped = false
  readonly #onChange = (event: DocChangeEvent<RecordSummary>): void => { this.#changed(event) }

  constructor (init: HoldingsInit) {
    this.#o = init
    this.#key = nodeDocKey(init.self)
    this.#publishMs = init.publishMs ?? 1000
  }

  async start (): Promise<void> {
    this.#o.docs.on('change', this.#onChange)
    for await (const [key] of this.#o.docs.scan('node/')) this.#stale.add(key)
    await this.#refresh()
    this.#schedule()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#o.docs.off('change', this.#onChange)
    clearTimeout(this.#timer)
    await this.#flushing
    await this.#reading
  }

  /** Peer ids whose node documents say they hold the blob. */
  holders (sha256: string): string[] {
    return [...this.#bySha.get(sha256) ?? []]
  }

  /** The blobs this node's own document lists. */
  own (): ReadonlyMap<string, number> {
    return this.#byNode.get(this.#o.self) ?? new Map()
  }

  /** The blob may have come or gone here: checked and published with the next batch. */
  mark (sha256: string, known?: number | null): void {
    if (!SHA256.test(sha256)) return
    this.#dirty.set(sha256, known)
    this.#schedule()
  }

  #changed (event: DocChangeEvent<RecordSummary>): void {
    if (event.key.startsWith('node/')) {
      this.#stale.add(event.key)
      this.#reading = this.#reading.then(async () => { await this.#refresh() }).catch(err => this.#o.onError?.(err))
      return
    }
    if (event.key === this.#o.rosterKey()) {
      this.#blocked = false
      this.#schedule()
      return
    }
    // An upload here: the blobs of the new version are here for an accepted reference.
    if (event.origin !== 'local' || !isRecordKind(event.key.slice(0, event.key.indexOf('/')))) return
    const s = event.meta.summary
    if (s.deleted) return
    const own = this.own()
    for (const sha of s.blobs ?? []) if (!own.has(sha)) this.mark(sha)
  }

  /** Reads the node documents that changed since last read. */
  async #refresh (): Promise<void> {
    const keys = [...this.#stale]
    this.#stale.clear()
    for (const key of keys) {
      if (this.#stopped) return
      const read = await this.#o.docs.read(key, doc => {
        if (doc === undefined) return undefined
        const d = doc as any
        if (d.kind !== 'node' || typeof d.peerId !== 'string' || `node/${nodeDocIdOf(d.peerId)}` !== key) return undefined
        const held = new Map<string, number>()
        for (const [sha, size] of Object.entries(asMap(d.holdings))) {
          if (SHA256.test(sha) && (typeof size === 'number' || typeof size === 'bigint')) held.set(sha, Number(size))
        }
        return { peerId: d.peerId as string, held }
      })
      if (read === undefined) continue
      const before = this.#byNode.get(read.peerId) ?? new Map<string, number>()
      for (const sha of before.keys()) {
        if (read.held.has(sha)) continue
        const set = this.#bySha.get(sha)
        set?.delete(read.peerId)
        if (set?.size === 0) this.#bySha.delete(sha)
      }
      for (const sha of read.held.keys()) {
        if (before.has(sha)) continue
        let set = this.#bySha.get(sha)
        if (set === undefined) { set = new Set(); this.#bySha.set(sha, set) }
        set.add(read.peerId)
      }
      this.#byNode.set(read.peerId, read.held)
    }
  }

  #schedule (): void {
    if (this.#stopped || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#flush().finally(() => { if (!this.#blocked && (this.#dirty.size > 0 || !this.#reconciled)) this.#schedule() })
    }, this.#publishMs)
    this.#timer.unref()
  }

  async #flush (): Promise<void> {
    if (this.#flushing !== undefined) { await this.#flushing; return }
    this.#flushing = this.#publish().catch(err => {
      // Refused (this node is not in the roster yet) or the store closed: the marks stay for the next try.
      if (!isDwError(err, 'FORBIDDEN')) this.#o.onError?.(err)
    }).finally(() => { this.#flushing = undefined })
    await this.#flushing
  }

  async #publish (): Promise<void> {
    if (this.#stopped) return
    if (!await this.#o.mayPublish()) { this.#blocked = true; return }
    if (!this.#reconciled) await this.#reconcile()
    await this.#reading
    const own = this.own()
    const put = new Map<string, number>()
    const del: string[] = []
    const taken: Array<[string, number | null | undefined]> = []
    for (const [sha, known] of this.#dirty) {
      if (taken.length >= MAX_PER_CHANGE) break
      taken.push([sha, known])
    }
    for (const [sha, known] of taken) {
      let size: number | undefined
      if (known === null) size = undefined
      else if (known !== undefined) size = known
      else size = (await this.#o.store.stat(sha))?.size
      if (size !== undefined && !await this.#o.refs.isReferenced(sha)) size = undefined
      if (size !== undefined && own.get(sha) !== size) put.set(sha, size)
      if (size === undefined && own.has(sha)) del.push(sha)
    }
    // No document until there is something to list: a site without files adds nothing to sync.
    if (put.size > 0 || del.length > 0) {
      const apply = (doc: any): void => {
        if (doc.holdings === null || typeof doc.holdings !== 'object' || Array.isArray(doc.holdings)) doc.holdings = {}
        for (const [sha, size] of put) doc.holdings[sha] = size
        for (const sha of del) if (doc.holdings[sha] !== undefined) delete doc.holdings[sha]
      }
      if (await this.#o.docs.meta(this.#key) === undefined) {
        if (put.size === 0) { for (const [sha] of taken) this.#dirty.delete(sha); return }
        await this.#o.docs.create(this.#key, doc => {
          doc.kind = 'node'
          doc.id = nodeDocIdOf(this.#o.self)
          doc.peerId = this.#o.self
          doc.holdings = {}
          apply(doc)
        }, { author: this.#o.author })
      } else {
        await this.#o.docs.change(this.#key, apply, { author: this.#o.author })
      }
    }
    // Marked again meanwhile stays marked.
    for (const [sha, known] of taken) if (this.#dirty.get(sha) === known) this.#dirty.delete(sha)
    await this.#reading
  }

  /** The node document against the store: what is here for an accepted reference, and nothing else. */
  async #reconcile (): Promise<void> {
    await this.#reading
    const own = this.own()
    const gone = new Set(own.keys())
    for await (const info of this.#o.store.list()) {
      if (this.#stopped) return
      gone.delete(info.sha256)
      if (this.#dirty.has(info.sha256)) continue
      const referenced = await this.#o.refs.isReferenced(info.sha256)
      if (referenced && own.get(info.sha256) !== info.size) this.#dirty.set(info.sha256, info.size)
      else if (!referenced && own.has(info.sha256)) this.#dirty.set(info.sha256, null)
    }
    for (const sha of gone) if (!this.#dirty.has(sha)) this.#dirty.set(sha, null)
    this.#reconciled = true
  }
}
