import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import * as A from '@automerge/automerge'
import type { Db, Sublevel } from '../db.ts'
import { binarySublevel, jsonSublevel } from '../db.ts'
import { DwError } from '../errors.ts'
import { GroupCommit, type BatchOp } from './group-commit.ts'
export type { BatchOp }
import { KeyLock } from '../key-lock.ts'
import { Lru } from './lru.ts'

/** What the store knows about a document without loading it. */
export interface DocMeta {
  /** Automerge heads: two stores hold the same document iff their heads match. */
  heads: string[]
  /** Position in this node's changes feed of the latest change to this document. */
  seq: number
  /** Incremental chunks stored after the snapshot; compaction folds them in. */
  chunks: number
  /** Small JSON the indexes and list endpoints use (name, owner, tags...). */
  summary: Record<string, unknown>
  /** Never offered to peers: this node's own bootstrap admin, for one. */
  local?: true
  /** Heads and summary as a peer vouched for them; not yet checked against the bytes. */
  unverified?: true
}

export interface FeedEntry { seq: number, key: string }

export type ChangeOrigin = 'local' | 'remote'

export interface DocChangeEvent { key: string, seq: number, origin: ChangeOrigin, meta: DocMeta }

/**
 * One document received from a peer: its bytes (a full save or changes).
 * For a document new here the peer may vouch for its `heads` and `summary`:
 * it is then stored without being loaded (loading is most of the cost of an
 * initial sync) and verified later, on first load or by `verifySome`.
 */
export interface RemoteDoc {
  key: string
  bytes: Uint8Array
  heads?: string[]
  summary?: Record<string, unknown>
}

export interface DocStoreOptions {
  /** Live documents kept in memory (default 500). */
  cacheSize?: number
  /** Incremental chunks after which a document is re-saved whole (default 32). */
  compactAfter?: number
  /** Derives the summary kept in the document's meta. */
  summarise: (key: string, doc: A.Doc<any>) => Record<string, unknown>
  /**
   * Secondary indexes kept in step with the documents: given the meta
   * before and after a change, the writes to add to the same atomic batch.
   */
  indexes?: Array<(key: string, before: DocMeta | undefined, after: DocMeta) => BatchOp[]>
}

interface Live { doc: A.Doc<any>, meta: DocMeta }

const SEQ_WIDTH = 16

function seqKey (seq: number): string {
  return seq.toString().padStart(SEQ_WIDTH, '0')
}

function chunkKey (key: string, n: number): string {
  return `${key}\x00${n.toString().padStart(8, '0')}`
}

function concat (parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

function sameHeads (a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false
  const set = new Set(a)
  return b.every(h => set.has(h))
}

/**
 * Automerge documents on LevelDB.
 *
 * Per document: a snapshot (`snap`), the incremental chunks written since
 * (`chunk`), and a meta entry with heads, feed position and summary. Every
 * change appends a chunk, moves the document to the head of the changes feed
 * (one entry per document, so a reader catching up from a checkpoint reads
 * each changed document once) and commits atomically with fsync before the
 * caller hears of it. Documents are loaded on demand into a bounded cache, so
 * start-up costs the same whatever the store holds.
 */
export class DocStore extends EventEmitter<{ change: [DocChangeEvent], mismatch: [{ key: string, claimed: string[], actual: string[] }] }> {
  readonly #snap: Sublevel<Uint8Array>
  readonly #chunk: Sublevel<Uint8Array>
  readonly #meta: Sublevel<DocMeta>
  readonly #feed: Sublevel<string>
  readonly #state: Sublevel<unknown>
  readonly #unverified: Sublevel<string>
  readonly #commit: GroupCommit
  /**
   * Everything that touches one document (read into the cache, change, merge
   * from a peer) runs under its key's lock, and a change keeps the lock until
   * it is durable: otherwise a reload from disk could reuse an actor
   * sequence number that an unflushed change already took.
   */
  readonly #lock = new KeyLock()
  readonly #cache: Lru<string, Live>
  readonly #compactAfter: number
  readonly #summarise: DocStoreOptions['summarise']
  readonly #indexes: NonNullable<DocStoreOptions['indexes']>
  /** A fresh actor per process run: reusing one after a crash could mint two different changes with one (actor, seq). */
  readonly actor: string = randomBytes(16).toString('hex')
  #seq = 0
  #epoch = ''

  private constructor (db: Db, options: DocStoreOptions) {
    super()
    this.#snap = binarySublevel(db, 'snap')
    this.#chunk = binarySublevel(db, 'chunk')
    this.#meta = jsonSublevel<DocMeta>(db, 'meta')
    this.#feed = jsonSublevel<string>(db, 'feed')
    this.#state = jsonSublevel<unknown>(db, 'docstate')
    this.#unverified = jsonSublevel<string>(db, 'unverified')
    this.#commit = new GroupCommit(db)
    this.#cache = new Lru(options.cacheSize ?? 500)
    this.#compactAfter = options.compactAfter ?? 32
    this.#summarise = options.summarise
    this.#indexes = options.indexes ?? []
    this.setMaxListeners(0)
  }

  static async open (db: Db, options: DocStoreOptions): Promise<DocStore> {
    const store = new DocStore(db, options)
    await store.#init()
    return store
  }

  async #init (): Promise<void> {
    const epoch = await this.#state.get('epoch')
    if (typeof epoch === 'string') {
      this.#epoch = epoch
    } else {
      this.#epoch = randomBytes(8).toString('hex')
      await this.#commit.write([{ type: 'put', sublevel: this.#state, key: 'epoch', value: this.#epoch }])
    }
    // The feed's last key is the highest sequence number ever committed:
    // seq and feed entry are written in the same atomic batch.
    for await (const key of this.#feed.keys({ reverse: true, limit: 1 })) {
      this.#seq = Number(key)
    }
  }

  /**
   * Identifies this store's feed. Sequence numbers mean nothing across
   * epochs: a peer holding a checkpoint from another epoch (the store was
   * wiped and re-created) must start again from zero.
   */
  get epoch (): string { return this.#epoch }

  /** The sequence number of the latest committed change. */
  get seq (): number { return this.#seq }

  async meta (key: string): Promise<DocMeta | undefined> {
    const live = this.#cache.get(key)
    if (live !== undefined) return live.meta
    return await this.#meta.get(key)
  }

  async metas (keys: string[]): Promise<Array<DocMeta | undefined>> {
    if (keys.length === 0) return []
    return await this.#meta.getMany(keys)
  }

  /** Metas of every document whose key starts with `prefix`, in key order. */
  async * scan (prefix: string, options: { after?: string } = {}): AsyncGenerator<[string, DocMeta]> {
    const range = options.after !== undefined && options.after >= prefix
      ? { gt: options.after, lt: prefix + '\xff' }
      : { gte: prefix, lt: prefix + '\xff' }
    for await (const entry of this.#meta.iterator(range)) yield entry
  }

  /** Feed entries after `since`, oldest first, at most `limit`. */
  async feedSince (since: number, limit: number): Promise<FeedEntry[]> {
    const out: FeedEntry[] = []
    for await (const [k, v] of this.#feed.iterator({ gt: seqKey(since), limit })) {
      out.push({ seq: Number(k), key: v })
    }
    return out
  }

  /** The document's stored bytes as one buffer that `A.load` accepts, without loading it. */
  async rawBytes (key: string): Promise<Uint8Array | undefined> {
    return (await this.savedMany([key]))[0]?.bytes
  }

  /**
   * Each document's stored bytes with the meta they match (its heads and
   * summary), read without loading anything. The reads are not one
   * snapshot: a write may land between them, so the meta is read again at
   * the end, and a document written meanwhile comes back without a meta
   * rather than with heads and a summary that are not its own.
   */
  async savedMany (keys: string[]): Promise<Array<{ bytes: Uint8Array, meta: DocMeta | undefined } | undefined>> {
    if (keys.length === 0) return []
    // Meta strictly before the bytes: a compaction between a snapshot read
    // and a meta read would otherwise pair an old snapshot with new heads.
    const metas = await this.#meta.getMany(keys)
    const snaps = await this.#snap.getMany(keys)
    const bytes = await Promise.all(keys.map(async (key, i) => {
      const meta = metas[i]
      return meta === undefined ? undefined : await this.#withChunks(key, meta, snaps[i])
    }))
    const after = await this.#meta.getMany(keys)
    return keys.map((_key, i) => {
      const b = bytes[i]
      const meta = metas[i]
      if (b === undefined || meta === undefined) return undefined
      // Every write gives the document a new feed position, compaction included.
      return { bytes: b, meta: after[i]?.seq === meta.seq ? meta : undefined }
    })
  }

  async #withChunks (key: string, meta: DocMeta, snap: Uint8Array | undefined): Promise<Uint8Array> {
    const parts = snap !== undefined ? [snap] : []
    if (meta.chunks > 0) {
      for await (const chunk of this.#chunk.values({ gte: chunkKey(key, 0), lt: `${key}\x01` })) parts.push(chunk)
    }
    return concat(parts)
  }

  /** Runs `fn` on the current document (undefined when absent) under the key's lock. */
  async read<T> (key: string, fn: (doc: A.Doc<any> | undefined, meta: DocMeta | undefined) => T): Promise<T> {
    return await this.#lock.run(key, async () => {
      const live = await this.#live(key)
      return fn(live?.doc, live?.meta)
    })
  }

  /**
   * Creates a document; fails with CONFLICT if the key exists. A `local`
   * document is stored and changed like any other but never offered to peers.
   */
  async create (key: string, init: (doc: any) => void, options: { time?: number, local?: boolean } = {}): Promise<DocChangeEvent> {
    return await this.#lock.run(key, async () => {
      if (await this.#live(key) !== undefined) throw new DwError('CONFLICT', `${key} already exists`)
      const empty = A.init<any>({ actor: this.actor })
      const doc = A.change(empty, { time: timeOf(options.time) }, init)
      return await this.#commitLocal(key, doc, undefined, options.local === true)
    })
  }

  /**
   * Applies `fn` to the document and commits. `fn` may throw to refuse the
   * change (nothing is written); it may return false to signal "no change".
   */
  async change (key: string, fn: (doc: any) => void | boolean, options: { time?: number } = {}): Promise<DocChangeEvent> {
    return await this.#lock.run(key, async () => {
      const live = await this.#live(key)
      if (live === undefined) throw new DwError('NOT_FOUND', `${key} not found`)
      const doc = A.change(live.doc, { time: timeOf(options.time) }, fn)
      if (doc === live.doc) return { key, seq: live.meta.seq, origin: 'local', meta: live.meta }
      return await this.#commitLocal(key, doc, live)
    })
  }

  /**
   * Merges documents received from a peer in one atomic, durable batch.
   * Returns the keys whose heads changed. Bytes that Automerge cannot parse
   * reject the whole batch with INVALID_MESSAGE and change nothing.
   */
  async applyRemote (items: RemoteDoc[]): Promise<string[]> {
    const keys = items.map(i => i.key)
    return await this.#lock.runAll(keys, async () => {
      // Merge first (this awaits loads), then number and stage the results in
      // one synchronous step: feed order must equal commit order, or a feed
      // reader could checkpoint past a sequence number not yet on disk.
      const merged = new Map<string, { doc: A.Doc<any>, before: Live | undefined, received: Uint8Array | undefined }>()
      const touched = new Set<string>()
      // One batched read tells which documents are new here (most, in an initial sync).
      const uncached = [...new Set(keys)].filter(k => this.#cache.get(k) === undefined)
      const stored = new Map(uncached.map((k, i) => [k, i]))
      const metas = await this.#meta.getMany(uncached)
      const counts = new Map<string, number>()
      for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1)
      const vouched = new Map<string, RemoteDoc>()
      for (const item of items) {
        const prior = merged.get(item.key)
        const index = stored.get(item.key)
        const absent = index !== undefined && metas[index] === undefined
        if (absent && counts.get(item.key) === 1 && item.heads !== undefined && item.heads.length > 0 && item.summary !== undefined) {
          vouched.set(item.key, item)
          continue
        }
        const before = prior?.before ?? await this.#live(item.key, index === undefined ? undefined : metas[index] ?? null)
        const base = prior?.doc ?? before?.doc
        let doc: A.Doc<any>
        try {
          doc = base === undefined
            ? A.load(item.bytes, { actor: this.actor })
            : A.loadIncremental(base, item.bytes)
        } catch (err) {
          for (const key of touched) this.#cache.delete(key)
          throw new DwError('INVALID_MESSAGE', `undecodable changes for ${item.key}`, { cause: err })
        }
        touched.add(item.key)
        // Two items for one new key: store a fresh save rather than either part.
        merged.set(item.key, { doc, before, received: prior === undefined ? item.bytes : undefined })
      }
      const ops: BatchOp[] = []
      const updated: Array<{ key: string, live: Live }> = []
      const stored2: Array<{ key: string, meta: DocMeta }> = []
      for (const [key, item] of vouched) {
        this.#seq += 1
        stored2.push({ key, meta: this.#stageVouched(ops, key, item, this.#seq) })
      }
      for (const [key, { doc, before, received }] of merged) {
        if (before !== undefined && sameHeads(A.getHeads(doc), before.meta.heads)) {
          // Nothing new, but loadIncremental may have replaced the document object.
          this.#cache.set(key, { doc, meta: before.meta })
          continue
        }
        this.#seq += 1
        updated.push({ key, live: this.#stage(ops, key, doc, before, this.#seq, before === undefined ? received : undefined) })
      }
      if (ops.length === 0) return []
      try {
        await this.#commit.write(ops)
      } catch (err) {
        for (const key of touched) this.#cache.delete(key)
        throw err
      }
      for (const { key, meta } of stored2) this.emit('change', { key, seq: meta.seq, origin: 'remote', meta })
      for (const { key, live } of updated) {
        // A document new here (most of an initial sync) is not kept live: it
        // would only push out documents in use, and its wasm memory is
        // returned at once. It loads again on demand.
        if (merged.get(key)?.before === undefined) A.free(live.doc)
        else this.#cache.set(key, live)
        this.emit('change', { key, seq: live.meta.seq, origin: 'remote', meta: live.meta })
      }
      return [...stored2.map(u => u.key), ...updated.map(u => u.key)]
    })
  }

  /** Stages a document new here as the peer vouched for it, without loading it. */
  #stageVouched (ops: BatchOp[], key: string, item: RemoteDoc, seq: number): DocMeta {
    const meta: DocMeta = { heads: [...(item.heads as string[])], seq, chunks: 0, summary: sanitiseSummary(key, item.summary ?? {}), unverified: true }
    ops.push({ type: 'put', sublevel: this.#snap, key, value: item.bytes })
    ops.push({ type: 'put', sublevel: this.#feed, key: seqKey(seq), value: key })
    ops.push({ type: 'put', sublevel: this.#meta, key, value: meta })
    ops.push({ type: 'put', sublevel: this.#unverified, key, value: '' })
    for (const index of this.#indexes) ops.push(...index(key, undefined, meta))
    return meta
  }

  /**
   * Checks up to `limit` documents stored on a peer's word: loads each,
   * and corrects its heads and summary if they differ. Returns how many it
   * checked (0: nothing left).
   */
  async verifySome (limit: number): Promise<number> {
    const keys: string[] = []
    for await (const key of this.#unverified.keys({ limit })) keys.push(key)
    for (const key of keys) {
      await this.#lock.run(key, async () => {
        const wasLive = this.#cache.get(key) !== undefined
        const live = await this.#live(key)
        if (live !== undefined && !wasLive) {
          this.#cache.delete(key)
          A.free(live.doc)
        }
      })
    }
    return keys.length
  }

  /** After loading a document stored on a peer's word: fix its meta if the word was wrong. */
  async #verified (key: string, doc: A.Doc<any>, meta: DocMeta): Promise<DocMeta> {
    const heads = A.getHeads(doc)
    const summary = this.#summary(key, doc)
    const fixed: DocMeta = { heads, seq: meta.seq, chunks: meta.chunks, summary }
    if (meta.local === true) fixed.local = true
    if (!sameHeads(heads, meta.heads)) this.emit('mismatch', { key, claimed: meta.heads, actual: heads })
    const ops: BatchOp[] = [
      { type: 'put', sublevel: this.#meta, key, value: fixed },
      { type: 'del', sublevel: this.#unverified, key }
    ]
    for (const index of this.#indexes) ops.push(...index(key, meta, fixed))
    await this.#commit.write(ops)
    return fixed
  }

  /** Changes of `key` that a holder of `heads` lacks, or the whole document when it cannot tell. */
  async changesSince (key: string, heads: string[]): Promise<Uint8Array | undefined> {
    return await this.read(key, (doc) => {
      if (doc === undefined) return undefined
      if (heads.length > 0 && A.hasHeads(doc, heads)) return A.saveSince(doc, heads)
      return A.save(doc)
    })
  }

  /** True when the document already contains every change that `heads` names. */
  async hasHeads (key: string, heads: string[]): Promise<boolean> {
    const meta = await this.meta(key)
    if (meta === undefined) return heads.length === 0
    const mine = new Set(meta.heads)
    if (heads.every(h => mine.has(h))) return true
    return await this.read(key, doc => doc !== undefined && A.hasHeads(doc, heads))
  }

  /** Resolves when every write so far is on disk. */
  async flush (): Promise<void> {
    await this.#commit.idle()
  }

  /** The cached document, or it loaded from disk; `known` skips the meta read when the caller has it (null: known absent). */
  async #live (key: string, known?: DocMeta | null): Promise<Live | undefined> {
    const cached = this.#cache.get(key)
    if (cached !== undefined) return cached
    const meta = known === undefined ? await this.#meta.get(key) : known ?? undefined
    if (meta === undefined) return undefined
    const bytes = await this.#withChunks(key, meta, await this.#snap.get(key))
    const doc = A.load<any>(bytes, { actor: this.actor })
    const live = { doc, meta: meta.unverified === true ? await this.#verified(key, doc, meta) : meta }
    this.#cache.set(key, live)
    return live
  }

  async #commitLocal (key: string, doc: A.Doc<any>, before: Live | undefined, local = false): Promise<DocChangeEvent> {
    const ops: BatchOp[] = []
    const seq = this.#seq + 1
    this.#seq = seq
    const live = this.#stage(ops, key, doc, before, seq, undefined, local)
    try {
      await this.#commit.write(ops)
    } catch (err) {
      this.#cache.delete(key)
      throw err
    }
    this.#cache.set(key, live)
    const event: DocChangeEvent = { key, seq, origin: 'local', meta: live.meta }
    this.emit('change', event)
    return event
  }

  /** A document whose shape defeats the summariser still gets stored, with an empty summary. */
  #summary (key: string, doc: A.Doc<any>): Record<string, unknown> {
    try {
      return this.#summarise(key, doc)
    } catch {
      return { kind: key.slice(0, key.indexOf('/')), name: '', owner: '', tags: [], deleted: false, createdAt: '', updatedAt: '', blobs: [], sizes: [] }
    }
  }

  /**
   * Adds to `ops` the writes that record `doc` as the new state of `key`.
   * `snapshot` is the peer's bytes of a document we did not have: stored as
   * received, which saves re-encoding it.
   */
  #stage (ops: BatchOp[], key: string, doc: A.Doc<any>, before: Live | undefined, seq: number, snapshot: Uint8Array | undefined, local = false): Live {
    const meta: DocMeta = {
      heads: A.getHeads(doc),
      seq,
      chunks: before?.meta.chunks ?? 0,
      summary: this.#summary(key, doc)
    }
    if (local || before?.meta.local === true) meta.local = true
    if (before === undefined) {
      ops.push({ type: 'put', sublevel: this.#snap, key, value: snapshot ?? A.save(doc) })
      meta.chunks = 0
    } else if (meta.chunks + 1 >= this.#compactAfter) {
      ops.push({ type: 'put', sublevel: this.#snap, key, value: A.save(doc) })
      for (let n = 0; n < meta.chunks; n++) ops.push({ type: 'del', sublevel: this.#chunk, key: chunkKey(key, n) })
      meta.chunks = 0
    } else {
      ops.push({ type: 'put', sublevel: this.#chunk, key: chunkKey(key, meta.chunks), value: A.saveSince(doc, before.meta.heads) })
      meta.chunks += 1
    }
    if (before !== undefined) ops.push({ type: 'del', sublevel: this.#feed, key: seqKey(before.meta.seq) })
    ops.push({ type: 'put', sublevel: this.#feed, key: seqKey(seq), value: key })
    ops.push({ type: 'put', sublevel: this.#meta, key, value: meta })
    for (const index of this.#indexes) ops.push(...index(key, before?.meta, meta))
    return { doc, meta }
  }
}

/** A summary a peer sent, reduced to the fields and types a summary has. */
function sanitiseSummary (key: string, raw: Record<string, unknown>): Record<string, unknown> {
  const text = (v: unknown): string => typeof v === 'string' ? v.slice(0, 1000) : ''
  const blobs = Array.isArray(raw.blobs) ? raw.blobs.filter((b): b is string => typeof b === 'string' && /^[0-9a-f]{64}$/.test(b)) : []
  const sizes = Array.isArray(raw.sizes) && raw.sizes.length === blobs.length ? raw.sizes.map(n => typeof n === 'number' ? n : 0) : blobs.map(() => 0)
  const out: Record<string, unknown> = {
    kind: key.slice(0, key.indexOf('/')),
    name: text(raw.name),
    owner: text(raw.owner),
    tags: Array.isArray(raw.tags) ? raw.tags.filter((t): t is string => typeof t === 'string').slice(0, 1000) : [],
    deleted: raw.deleted === true,
    createdAt: text(raw.createdAt),
    updatedAt: text(raw.updatedAt),
    blobs,
    sizes
  }
  if (out.kind === 'user') {
    out.username = text(raw.username)
    out.role = text(raw.role)
    out.disabled = raw.disabled === true
  }
  return out
}

function timeOf (ms: number | undefined): number {
  // Automerge records change times in whole seconds.
  return Math.floor((ms ?? Date.now()) / 1000)
}
