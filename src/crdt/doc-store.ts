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
import { changeHeader, saveUncompressed, splitChunks } from './chunks.ts'
import type { CheckItem, CheckVerdict } from './doc-checker.ts'
import { quarantineId, type Quarantine } from './quarantine.ts'
import { touchedMap, type PreparedDoc } from './prepared-states.ts'
import { packSigs, sigFor, unpackSigs, type SigLookup } from './sig-entries.ts'

/**
 * What the store knows about a document without loading it. `S` is the
 * summary the injected summariser derives (DocStoreOptions.summarise): the
 * store keeps it without looking inside.
 */
export interface DocMeta<S extends object = object> {
  /** Automerge heads: two stores hold the same document iff their heads match. */
  heads: string[]
  /** Position in this node's changes feed of the latest change to this document. */
  seq: number
  /** Incremental chunks stored after the snapshot; compaction folds them in. */
  chunks: number
  /** Small JSON the indexes and list endpoints use, from the summariser. */
  summary: S
  /** Never offered to peers: this node's own bootstrap admin, for one. */
  local?: true
}

export interface FeedEntry { seq: number, key: string }

export type ChangeOrigin = 'local' | 'remote'

export interface DocChangeEvent<S extends object = object> { key: string, seq: number, origin: ChangeOrigin, meta: DocMeta<S> }

/**
 * One document received from a peer: its bytes (a full save or changes)
 * and the signatures of the changes in them, packed (see `packSigs`), each
 * entry `sigEntry` bytes: 96 (whole hash) by default, 72 when the session
 * sends only a hash prefix (`shortenSigs`).
 */
export interface RemoteDoc {
  key: string
  bytes: Uint8Array
  sigs?: Uint8Array
  sigEntry?: number
}

/** One change as an admission check sees it. */
export interface ChangeInfo { hash: string, deps: string[], message: string | null }

/**
 * `wait`: the change references a state this node lacks (it is parked).
 * `transient`: the refusal is about this copy, not the change (a missing or
 * bad signature): an honest copy may still arrive, so the hash is not
 * remembered as refused.
 */
export type Verdict = { ok: true } | { ok: false, reason: string, wait?: boolean, transient?: boolean }

export interface JudgeContext {
  key: string
  /** The document holding the change and everything it depends on; undefined when the checker prepared its `states`. */
  doc: A.Doc<any> | undefined
  /** Each change's states as the document checker's worker prepared them (prepared-states.ts), instead of `doc`. */
  states?: ReadonlyMap<string, ChangeStates>
  /** Runs `fn` on another document as of `heads`; undefined when this node lacks those heads. */
  at: <T>(key: string, heads: string[], fn: (doc: any) => T) => Promise<T | undefined>
  /** True when this node refused one of these changes: a state built on it can never arrive here. */
  wasRefused: (hashes: string[]) => Promise<boolean>
  /**
   * The document as stored before the changes being judged (its state at
   * `heads`, already materialised) and Automerge's patches from there to
   * `doc`. A change that is the only one new on that state (most changes)
   * is judged with these instead of a view and a diff of its own, which
   * cost as much as loading the document again.
   */
  base?: BaseState
}

export interface BaseState { heads: string[], doc: any, patches: A.Patch[] }

/** A change's document before it (undefined for a document's first change) and after it, and the fields and keys it touched. */
export interface ChangeStates { before: any, after: any, touched: Map<string, Set<string>> }

/**
 * Decides which changes may enter a document, and attributes and signs
 * this node's own. The store knows nothing of what the rules are; it makes
 * sure no change, local or remote, reaches a replicated document without
 * a verdict, and that a refused change takes everything built on it along.
 */
export interface ChangeAdmission {
  /** The message recorded on a change that `author` makes here. */
  claims: (author: string) => Promise<string>
  sign: (hash: string) => Uint8Array
  /**
   * Documents other changes reference (the roster, accounts): applied first
   * in a batch, and a change to one of them judges parked changes again.
   * Lower ranks first; undefined for an ordinary document.
   */
  referenceRank: (key: string) => number | undefined
  /** Documents every sync session offers before anything else (the roster), so a puller judges the rest under them. */
  firstKeys: () => string[]
  /** `wait`: the change references a state this node lacks; it is parked and judged again when that arrives. */
  judge: (ctx: JudgeContext, change: ChangeInfo, sig: Uint8Array | undefined, origin: 'local' | 'remote') => Promise<Verdict>
}

/** A remote change that was not admitted. */
export interface Refusal { key: string, hash: string, reason: string, message: string | null }

export interface AdmitResult {
  /** Keys whose heads changed. */
  changed: string[]
  refused: Refusal[]
  /** Changes parked until the state they reference arrives. */
  parked: number
  /** Documents kept out because loading them broke a limit (see DocGuard). */
  quarantined: Quarantined[]
}

export interface Quarantined { key: string, id: string, reason: string }

/** Checks started ahead of `admitRemote` (see `DocStore.screenRemote`): a verdict per key, with the state it was checked on. */
export interface Screening { verdicts: Promise<Map<string, { base: string, verdict: CheckVerdict }>> }

/**
 * Screens what peers send before this process's Automerge touches it: a
 * checker that loads it elsewhere (a worker) within limits, and the
 * quarantine that keeps what failed out for good.
 */
export interface DocGuard {
  checker: { check: (items: CheckItem[]) => Promise<CheckVerdict[]> }
  quarantine: Quarantine
  /** Operations a replicated document may hold: a local change past it is refused, or peers would quarantine the document. */
  maxOps: number
}

/** Changes parked at most; past this a change waiting for a reference is refused. */
const MAX_PARKED = 50_000

/**
 * A secondary index kept in step with the documents: given the meta before
 * and after a change, the writes to add to the same atomic batch.
 */
export type DocIndex<S extends object = object> = (key: string, before: DocMeta<S> | undefined, after: DocMeta<S>) => BatchOp[]

export interface DocStoreOptions<S extends object = object> {
  /** Live documents kept in memory (default 500). */
  cacheSize?: number
  /** Incremental chunks after which a document is re-saved whole (default 32). */
  compactAfter?: number
  /**
   * Derives the summary kept in the document's meta. It must not throw:
   * documents arrive from peers in any shape, and one that defeats the
   * summariser is still stored, so the summariser decides what such a
   * document's summary is (src/crdt/summary.ts).
   */
  summarise: (key: string, doc: A.Doc<any>) => S
  /** Secondary indexes kept in step with the documents (see DocIndex). */
  indexes?: Array<DocIndex<S>>
  /** Judges and signs changes; without it every change is taken as it comes (tests of the store alone). */
  admission?: ChangeAdmission
  /**
   * Start a new feed epoch even though one is stored: this store is a
   * restored or copied incarnation, whose sequence numbers peers may already
   * hold checkpoints for (src/start/instance.ts).
   */
  renewEpoch?: boolean
}

interface Live<S extends object> { doc: A.Doc<any>, meta: DocMeta<S> }

/**
 * A document of a remote batch, judged and ready to stage: merged here
 * (`received`: the peer's bytes of a document new here, stored as they
 * are), or prepared by the checker and stored as received, unloaded.
 */
type Merged<S extends object> =
  | { doc: A.Doc<any>, before: Live<S> | undefined, received: Uint8Array | undefined }
  | { prepared: PreparedDoc, prior: DocMeta<S> | undefined, received: Uint8Array }

const SEQ_WIDTH = 16

function seqKey (seq: number): string {
  return seq.toString().padStart(SEQ_WIDTH, '0')
}

/** Documents whose stored bytes an admission reads at once (see #savedBytesMany). */
const LOAD_GROUP = 32

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
export class DocStore<out S extends object = object> extends EventEmitter<{ change: [DocChangeEvent<S>], refused: [Refusal[]] }> {
  readonly #snap: Sublevel<Uint8Array>
  readonly #chunk: Sublevel<Uint8Array>
  /**
   * Typed by what every summary is (an object), so that the store is
   * covariant in S: a DocStore<RecordSummary> is a DocStore to the layers
   * that never read a summary (sync). Every meta in it was written by
   * #stage with a summary from #summarise, so #stored hands it out as S.
   */
  readonly #meta: Sublevel<DocMeta>
  readonly #feed: Sublevel<string>
  readonly #state: Sublevel<unknown>
  readonly #sig: Sublevel<Uint8Array>
  readonly #parked: Sublevel<Uint8Array>
  /** Hashes of remote changes this node refused (a change referencing one can be refused rather than wait forever). */
  readonly #refusedHashes: Sublevel<Uint8Array>
  readonly #commit: GroupCommit
  /**
   * Everything that touches one document (read into the cache, change, merge
   * from a peer) runs under its key's lock, and a change keeps the lock until
   * it is durable: otherwise a reload from disk could reuse an actor
   * sequence number that an unflushed change already took.
   */
  readonly #lock = new KeyLock()
  readonly #cache: Lru<string, Live<S>>
  readonly #compactAfter: number
  readonly #summarise: DocStoreOptions<S>['summarise']
  /** The indexes behind a method: unlike a field of function type, it leaves the store covariant in S (see #meta). */
  readonly #indexes: { ops (key: string, before: DocMeta<S> | undefined, after: DocMeta<S>): BatchOp[] }
  #admission: ChangeAdmission | undefined
  #guard: DocGuard | undefined
  #parkedCount = 0
  #retrying: Promise<void> | undefined
  /** A fresh actor per process run: reusing one after a crash could mint two different changes with one (actor, seq). */
  readonly actor: string = randomBytes(16).toString('hex')
  #seq = 0
  #epoch = ''
  readonly #renewEpoch: boolean

  private constructor (db: Db, options: DocStoreOptions<S>) {
    super()
    this.#snap = binarySublevel(db, 'snap')
    this.#chunk = binarySublevel(db, 'chunk')
    this.#meta = jsonSublevel<DocMeta>(db, 'meta')
    this.#feed = jsonSublevel<string>(db, 'feed')
    this.#state = jsonSublevel<unknown>(db, 'docstate')
    this.#sig = binarySublevel(db, 'sig')
    this.#parked = binarySublevel(db, 'parked')
    this.#refusedHashes = binarySublevel(db, 'refused')
    this.#commit = new GroupCommit(db)
    this.#cache = new Lru<string, Live<S>>(options.cacheSize ?? 500, { evicted: (key, live) => { this.#release(key, live.doc) } })
    this.#compactAfter = options.compactAfter ?? 32
    this.#summarise = options.summarise
    const indexes = options.indexes ?? []
    this.#indexes = { ops (key, before, after) { return indexes.flatMap(index => index(key, before, after)) } }
    this.#admission = options.admission
    this.#renewEpoch = options.renewEpoch === true
    this.setMaxListeners(0)
  }

  static async open<S extends object = object> (db: Db, options: DocStoreOptions<S>): Promise<DocStore<S>> {
    const store = new DocStore<S>(db, options)
    await store.#init()
    return store
  }

  async #init (): Promise<void> {
    const epoch = await this.#state.get('epoch')
    if (typeof epoch === 'string' && !this.#renewEpoch) {
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
    for await (const key of this.#parked.keys()) {
      this.#parkedCount += 1
      // Conservatively: any document with a parked change may be waiting for a dependency.
      this.#waitingDeps.add(key.slice(0, key.indexOf('\x00')))
    }
  }

  /** Plugs in the admission check (it needs the store to exist first). */
  admitWith (admission: ChangeAdmission): void {
    this.#admission = admission
  }

  /** Plugs in the screen for documents from peers (a running node has one; `dw init` and tests of the store alone need none). */
  guardWith (guard: DocGuard | undefined): void {
    this.#guard = guard
  }

  readonly #wasRefused = async (hashes: string[]): Promise<boolean> => {
    if (hashes.length === 0) return false
    return (await this.#refusedHashes.getMany(hashes)).some(v => v !== undefined)
  }

  /** Documents every sync session offers first (see ChangeAdmission.firstKeys). */
  firstKeys (): string[] {
    return this.#admission?.firstKeys() ?? []
  }

  /** Changes waiting for a state they reference. */
  get parkedCount (): number { return this.#parkedCount }

  /**
   * Identifies this store's feed. Sequence numbers mean nothing across
   * epochs: a peer holding a checkpoint from another epoch (the store was
   * wiped and re-created) must start again from zero.
   */
  get epoch (): string { return this.#epoch }

  /** The sequence number of the latest committed change. */
  get seq (): number { return this.#seq }

  async meta (key: string): Promise<DocMeta<S> | undefined> {
    const live = this.#cache.get(key)
    if (live !== undefined) return live.meta
    return await this.#stored(key)
  }

  async metas (keys: string[]): Promise<Array<DocMeta<S> | undefined>> {
    if (keys.length === 0) return []
    return await this.#storedMany(keys)
  }

  /** Metas of every document whose key starts with `prefix`, in key order. */
  async * scan (prefix: string, options: { after?: string } = {}): AsyncGenerator<[string, DocMeta<S>]> {
    const range = options.after !== undefined && options.after >= prefix
      ? { gt: options.after, lt: prefix + '\xff' }
      : { gte: prefix, lt: prefix + '\xff' }
    for await (const [key, meta] of this.#meta.iterator(range)) yield [key, meta as DocMeta<S>]
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
   * Each document's stored bytes, the meta they match and the signatures of
   * their changes, read without loading anything. The reads are not one
   * snapshot: a write may land between them, so the meta is read again at
   * the end, and a document written meanwhile comes back without a meta
   * rather than with heads that are not its own.
   */
  async savedMany (keys: string[]): Promise<Array<{ bytes: Uint8Array, meta: DocMeta<S> | undefined, sigs: Uint8Array } | undefined>> {
    if (keys.length === 0) return []
    // Meta strictly before the bytes: a compaction between a snapshot read
    // and a meta read would otherwise pair an old snapshot with new heads.
    const metas = await this.#storedMany(keys)
    const bytes = await this.#savedBytesMany(keys, metas)
    // Signatures after the bytes: a change written meanwhile adds one too many, never one too few.
    const sigs = await Promise.all(keys.map(async key => await this.#allSigs(key)))
    const after = await this.#storedMany(keys)
    return keys.map((_key, i) => {
      const b = bytes[i]
      const meta = metas[i]
      if (b === undefined || meta === undefined) return undefined
      // Every write gives the document a new feed position, compaction included.
      return { bytes: b, meta: after[i]?.seq === meta.seq ? meta : undefined, sigs: sigs[i] as Uint8Array }
    })
  }

  /** The stored meta (see #meta for why it is an S). */
  async #stored (key: string): Promise<DocMeta<S> | undefined> {
    return await this.#meta.get(key) as DocMeta<S> | undefined
  }

  async #storedMany (keys: string[]): Promise<Array<DocMeta<S> | undefined>> {
    return await this.#meta.getMany(keys) as Array<DocMeta<S> | undefined>
  }

  async #allSigs (key: string): Promise<Uint8Array> {
    const entries: Array<[string, Uint8Array]> = []
    for await (const [k, sig] of this.#sig.iterator({ gt: `${key}\x00`, lt: `${key}\x01` })) entries.push([k.slice(key.length + 1), sig])
    return packSigs(entries)
  }

  /**
   * What `#withChunks` reads, for many documents at once: two reads in all
   * (their snapshots, then their chunks by the count each meta gives)
   * instead of two for each document, each a trip to LevelDB's threads.
   * Undefined for a document without a meta. Under the keys' locks the
   * bytes match the metas; without them (`screenRemote`) the reads may
   * straddle an update, which also changes the heads, so a verdict on
   * such bytes is never used (`#screen` compares the heads).
   */
  async #savedBytesMany (keys: string[], metas: Array<DocMeta<S> | undefined>): Promise<Array<Uint8Array | undefined>> {
    const held = keys.filter((_key, i) => metas[i] !== undefined)
    if (held.length === 0) return keys.map(() => undefined)
    const snaps = await this.#snap.getMany(held)
    const chunkKeys: string[] = []
    keys.forEach((key, i) => { for (let n = 0; n < (metas[i]?.chunks ?? 0); n++) chunkKeys.push(chunkKey(key, n)) })
    const chunks = chunkKeys.length === 0 ? [] : await this.#chunk.getMany(chunkKeys)
    let snapAt = 0
    let chunkAt = 0
    return keys.map((_key, i) => {
      const meta = metas[i]
      if (meta === undefined) return undefined
      const snap = snaps[snapAt++]
      const parts = snap === undefined ? [] : [snap]
      for (let n = 0; n < meta.chunks; n++) {
        const chunk = chunks[chunkAt++]
        if (chunk !== undefined) parts.push(chunk)
      }
      return concat(parts)
    })
  }

  async #withChunks (key: string, meta: DocMeta<S>, snap: Uint8Array | undefined): Promise<Uint8Array> {
    const parts = snap !== undefined ? [snap] : []
    if (meta.chunks > 0) {
      for await (const chunk of this.#chunk.values({ gte: chunkKey(key, 0), lt: `${key}\x01` })) parts.push(chunk)
    }
    return concat(parts)
  }

  /** Runs `fn` on the current document (undefined when absent) under the key's lock. */
  async read<T> (key: string, fn: (doc: A.Doc<any> | undefined, meta: DocMeta<S> | undefined) => T): Promise<T> {
    return await this.#lock.run(key, async () => {
      const live = await this.#live(key)
      return fn(live?.doc, live?.meta)
    })
  }

  /**
   * Reads the document as it was at `heads`, such as a change left it: the
   * document itself when nothing came since, else a view at those heads.
   * `fn` gets undefined when the document does not hold them.
   */
  async readAt<T> (key: string, heads: string[], fn: (doc: A.Doc<any> | undefined) => T): Promise<T> {
    return await this.#lock.run(key, async () => {
      const live = await this.#live(key)
      if (live === undefined) return fn(undefined)
      if (sameHeads(live.meta.heads, heads)) return fn(live.doc)
      return A.hasHeads(live.doc, heads) ? fn(A.view(live.doc, heads)) : fn(undefined)
    })
  }

  /**
   * Creates a document; fails with CONFLICT if the key exists. A `local`
   * document is stored and changed like any other but never offered to
   * peers, and needs no author. Any other change names its `author` and
   * passes the admission check before anything is written.
   */
  async create (key: string, init: (doc: any) => void, options: { time?: number, local?: boolean, author?: string } = {}): Promise<DocChangeEvent<S>> {
    const local = options.local === true
    // Everything under the lock, from the first await: calls for one key apply in call order.
    return await this.#lock.run(key, async () => {
      const message = local ? undefined : await this.#claims(options.author)
      if (await this.#live(key) !== undefined) throw new DwError('CONFLICT', `${key} already exists`)
      const empty = A.init<any>({ actor: this.actor })
      const doc = A.change(empty, changeOptions(options.time, message), init)
      const ops = local ? [] : await this.#admitLocal(key, doc, undefined)
      return await this.#commitLocal(key, doc, undefined, local, ops)
    })
  }

  /**
   * Applies `fn` to the document and commits. `fn` may throw to refuse the
   * change (nothing is written); it may return false to signal "no change".
   */
  async change (key: string, fn: (doc: any) => void | boolean, options: { time?: number, author?: string } = {}): Promise<DocChangeEvent<S>> {
    // Everything under the lock, from the first await: changes to one key
    // apply in call order. (Reading the meta and the claims first let a
    // later call that found its reads cached overtake an earlier one.)
    return await this.#lock.run(key, async () => {
      const live = await this.#live(key)
      if (live === undefined) throw new DwError('NOT_FOUND', `${key} not found`)
      // Local-only documents never leave this node: no claims to make.
      const message = live.meta.local === true ? undefined : await this.#claims(options.author)
      let patches: A.Patch[] = []
      const doc = A.change(live.doc, { ...changeOptions(options.time, message), patchCallback: p => { patches = p } }, fn)
      if (doc === live.doc) return { key, seq: live.meta.seq, origin: 'local', meta: live.meta }
      const ops = live.meta.local === true ? [] : await this.#admitLocal(key, doc, live, { heads: live.meta.heads, doc: live.doc, patches })
      return await this.#commitLocal(key, doc, live, false, ops)
    })
  }

  async #claims (author: string | undefined): Promise<string | undefined> {
    if (this.#admission === undefined) return undefined
    if (author === undefined) throw new DwError('FORBIDDEN', 'a replicated change needs an author')
    return await this.#admission.claims(author)
  }

  /** Judges this node's own new change by the rules its peers will apply, and signs it. */
  async #admitLocal (key: string, doc: A.Doc<any>, before: Live<S> | undefined, base?: BaseState): Promise<BatchOp[]> {
    const maxOps = this.#guard?.maxOps
    if (maxOps !== undefined && A.stats(doc).numOps > maxOps) {
      if (before !== undefined) this.#cache.delete(key)
      throw new DwError('PAYLOAD_TOO_LARGE', `${key} would hold more than ${maxOps} operations, the most a peer accepts in one document`)
    }
    const admission = this.#admission
    if (admission === undefined) return []
    // Metadata only: decoding a change turns every op into JS, the bulk of the cost.
    const info = A.getChangesMetaSince(doc, before?.meta.heads ?? []).at(-1)
    if (info === undefined) return []
    const hash = info.hash
    const verdict = await admission.judge({ key, doc, at: this.#at(new Map()), wasRefused: this.#wasRefused, ...(base === undefined ? {} : { base }) }, { hash, deps: info.deps, message: info.message }, undefined, 'local')
    if (!verdict.ok) {
      // A.change consumed the cached document: drop it, the next read loads from disk.
      if (before !== undefined) this.#cache.delete(key)
      throw new DwError('FORBIDDEN', verdict.reason)
    }
    return [{ type: 'put', sublevel: this.#sig, key: `${key}\x00${hash}`, value: admission.sign(hash) }]
  }

  /**
   * Reads another document at given heads without taking its lock: the
   * documents of the batch being admitted (which hold this batch's locks),
   * else the cached copy used at once, else a fresh load nobody else holds.
   */
  #at (batch: Map<string, A.Doc<any>>): JudgeContext['at'] {
    return async (key, heads, fn) => {
      const inBatch = batch.get(key)
      if (inBatch !== undefined) return atHeads(inBatch, heads, fn)
      const cached = this.#cache.get(key)
      if (cached !== undefined) return atHeads(cached.doc, heads, fn)
      const meta = await this.#stored(key)
      if (meta === undefined) return undefined
      const mine = new Set(meta.heads)
      const bytes = await this.#withChunks(key, meta, await this.#snap.get(key))
      const again = this.#cache.get(key)
      if (again !== undefined) return atHeads(again.doc, heads, fn)
      const doc = A.load<any>(bytes)
      try {
        return heads.every(h => mine.has(h)) || A.hasHeads(doc, heads) ? fn(A.view(doc, heads)) : undefined
      } finally {
        A.free(doc)
      }
    }
  }

  /**
   * Merges documents received from a peer in one atomic, durable batch.
   * Returns the keys whose heads changed. Bytes that Automerge cannot parse
   * reject the whole batch with INVALID_MESSAGE and change nothing.
   */
  async applyRemote (items: RemoteDoc[]): Promise<string[]> {
    return (await this.admitRemote(items)).changed
  }

  /**
   * Like `applyRemote`, and says which changes were refused and why. Each
   * new change is judged on its own (against the state it was made on and
   * the states it references); a refused change, and every change built on
   * it, is not stored and so never relayed. The rest of the batch applies.
   */
  async admitRemote (items: RemoteDoc[], options: { peer?: string, screening?: Screening } = {}): Promise<AdmitResult> {
    const byKey = byKeyOf(items)
    const rank = (key: string): number => this.#admission?.referenceRank(key) ?? Infinity
    const keys = [...byKey.keys()].sort((a, b) => rank(a) - rank(b))
    return await this.#lock.runAll(keys, async () => {
      // Merge and judge first (this awaits loads), then number and stage the
      // results in one synchronous step: feed order must equal commit order,
      // or a feed reader could checkpoint past a sequence number not yet on disk.
      const merged = new Map<string, Merged<S>>()
      const batch = new Map<string, A.Doc<any>>()
      const touched = new Set<string>()
      const refused: Refusal[] = []
      const ops: BatchOp[] = []
      let parked = 0
      const metas = await this.#storedMany(keys)
      const { kept: screened, quarantined, prepared } = await this.#screen(keys, byKey, metas, options.peer, options.screening)
      const forget = (): void => { for (const key of touched) this.#cache.delete(key) }
      // Documents the checker prepared, which need not be loaded here (prepared-states.ts).
      const ready = new Map<string, PreparedDoc>()
      keys.forEach((key, i) => {
        const prep = prepared.get(key)
        if (prep !== undefined && screened.has(key) && this.#canStorePrepared(key, prep, metas[i], byKey.get(key)?.bytes ?? [])) ready.set(key, prep)
      })
      // The stored bytes of documents to load, read a group at a time (a group's bytes are held until it is done).
      let saved = new Map<string, Uint8Array | undefined>()
      for (const [i, key] of keys.entries()) {
        if (i % LOAD_GROUP === 0) {
          const group = keys.slice(i, i + LOAD_GROUP).map((k, j) => ({ k, meta: screened.has(k) && !ready.has(k) && this.#cache.peek(k) === undefined ? metas[i + j] : undefined }))
          const bytes = await this.#savedBytesMany(group.map(g => g.k), group.map(g => g.meta))
          saved = new Map(group.map((g, j) => [g.k, bytes[j]]))
        }
        if (!screened.has(key)) continue
        const { bytes: parts, sigs } = byKey.get(key) as { bytes: Uint8Array[], sigs: SigLookup }
        const whole = concat(parts)
        const prep = ready.get(key)
        if (prep !== undefined) {
          const sigOps = await this.#admitPrepared(key, prep, sigs, batch)
          if (sigOps !== undefined) {
            ops.push(...sigOps)
            merged.set(key, { prepared: prep, prior: metas[i], received: whole })
            continue
          }
          // A change was not admitted: the document takes the whole path below, which judges it again and parks or refuses it.
        }
        const before = await this.#live(key, metas[i] ?? null, saved.get(key))
        if (before?.meta.local === true) {
          for (const { hash, message } of describeChanges(whole)) refused.push({ key, hash, reason: 'a local-only document never changes from outside', message })
          continue
        }
        const baseHeads = before?.meta.heads ?? []
        let doc: A.Doc<any> | undefined
        let bytes = whole
        // The stored state the changes are merged into, kept for the judge (JudgeContext.base).
        let base: BaseState | undefined
        const merge = (stored: A.Doc<any>, changes: Uint8Array): A.Doc<any> => {
          let patches: A.Patch[] = []
          const out = A.loadIncremental(stored, changes, { patchCallback: p => { patches = p } })
          base = { heads: baseHeads, doc: stored, patches }
          return out
        }
        if (before !== undefined) touched.add(key)
        try {
          // New here and no whole document: changes only, perhaps without their dependencies.
          const careful = this.#admission !== undefined && before === undefined && !splitChunks(whole).some(c => c.type === 0)
          if (!careful) doc = before === undefined ? A.load(whole, { actor: this.actor }) : merge(before.doc, whole)
          if (this.#admission !== undefined && (careful || A.getMissingDeps(doc as A.Doc<any>, []).length > 0)) {
            // Changes whose dependencies are not here would wait inside
            // Automerge, unsaved and unjudged. Rare: start again from disk
            // without them (they are parked, or refused with a refused parent).
            if (doc !== undefined) {
              // loadIncremental worked on the cached document's own memory.
              this.#cache.delete(key)
              A.free(doc)
              doc = undefined
              base = undefined
            }
            const stored = before === undefined ? undefined : A.load<any>(await this.#withChunks(key, before.meta, await this.#snap.get(key)), { actor: this.actor })
            const kept = await this.#withDepsHere(key, whole, stored, sigs, refused, ops)
            bytes = kept.bytes
            parked += kept.parked
            if (bytes.length > 0) doc = stored === undefined ? A.load(bytes, { actor: this.actor }) : merge(stored, bytes)
            else if (stored !== undefined) A.free(stored)
          }
        } catch (err) {
          forget()
          throw new DwError('INVALID_MESSAGE', `undecodable changes for ${key}`, { cause: err })
        }
        if (doc === undefined) continue
        const loaded: A.Doc<any> = doc
        const admission = this.#admission
        let received = before === undefined ? bytes : undefined
        if (admission !== undefined) {
          const fresh = topological(A.getChangesMetaSince(doc, baseHeads).map(info => ({ info })))
          // The raw changes are needed only to rebuild without a refused change, or to park one.
          let raw: Map<string, Uint8Array> | undefined
          const rawChange = (hash: string): Uint8Array => {
            raw ??= new Map(A.getChangesSince(loaded, baseHeads).map(c => [changeHeader(c).hash, c]))
            return raw.get(hash) as Uint8Array
          }
          const out = new Set<string>()
          const accepted: string[] = []
          // The document being judged, when a change references a state of it
          // (a user changing their own account): only states made of what is
          // already here or already admitted, never of a change not yet judged.
          const freshHashes = new Set(fresh.map(f => f.info.hash))
          const admitted = new Set<string>()
          const others = this.#at(batch)
          const at: JudgeContext['at'] = async (k, heads, fn) => {
            if (k !== key) return await others(k, heads, fn)
            if (heads.some(h => freshHashes.has(h) && !admitted.has(h))) return undefined
            return atHeads(loaded, heads, fn)
          }
          const ctx: JudgeContext = { key, doc, at, wasRefused: this.#wasRefused, ...(base === undefined ? {} : { base }) }
          const waiting = new Set<string>()
          const transient = new Set<string>()
          const alreadyParked = new Set<string>()
          // Nothing parked anywhere (nearly always): no read to find out.
          const parkedNow = this.#parkedCount === 0 ? [] : await this.#parked.getMany(fresh.map(f => `${key}\x00${f.info.hash as string}`))
          fresh.forEach((f, j) => { if (parkedNow[j] !== undefined) alreadyParked.add(f.info.hash as string) })
          for (const { info } of fresh) {
            const hash = info.hash
            const sig = sigFor(sigs, hash)
            const verdict: Verdict = info.deps.some(d => out.has(d) && !waiting.has(d))
              ? { ok: false, reason: 'it depends on a refused change', transient: info.deps.some(d => transient.has(d)) }
              : info.deps.some(d => waiting.has(d))
                ? { ok: false, wait: true, reason: 'it depends on a change waiting for a state it references' }
                : await admission.judge(ctx, { hash, deps: info.deps, message: info.message }, sig, 'remote')
            const parkedKey = `${key}\x00${hash}`
            const unpark = (): void => {
              if (!alreadyParked.has(hash)) return
              ops.push({ type: 'del', sublevel: this.#parked, key: parkedKey })
              parked -= 1
            }
            if (verdict.ok) {
              accepted.push(hash)
              admitted.add(hash)
              ops.push({ type: 'put', sublevel: this.#sig, key: parkedKey, value: sig as Uint8Array })
              unpark()
              continue
            }
            out.add(hash)
            if (verdict.wait === true && sig !== undefined && (alreadyParked.has(hash) || this.#parkedCount + parked < MAX_PARKED)) {
              waiting.add(hash)
              if (!alreadyParked.has(hash)) {
                parked += 1
                ops.push({ type: 'put', sublevel: this.#parked, key: parkedKey, value: concat([sig, rawChange(hash)]) })
              }
            } else {
              unpark()
              const reason = verdict.wait === true ? `${verdict.reason}, and it cannot wait: ${sig === undefined ? 'it is unsigned' : 'too many changes are waiting'}` : verdict.reason
              refused.push({ key, hash, reason, message: info.message })
              // A bad copy, or a change that could not wait: an honest copy may still come later.
              if (verdict.transient === true || verdict.wait === true) transient.add(hash)
              else ops.push({ type: 'put', sublevel: this.#refusedHashes, key: hash, value: new Uint8Array(0) })
            }
          }
          if (out.size > 0) {
            // Rebuild from what is on disk plus the accepted changes only. The
            // loaded document shares memory with the cached one, which is
            // replaced by the rebuilt document below (or dropped, if nothing
            // here is stored).
            const changes = accepted.map(rawChange)
            if (before !== undefined) this.#cache.delete(key)
            A.free(doc)
            const base = before === undefined ? A.init<any>({ actor: this.actor }) : A.load<any>(await this.#withChunks(key, before.meta, await this.#snap.get(key)), { actor: this.actor })
            doc = changes.length > 0 ? A.applyChanges(base, changes)[0] : base
            received = undefined
            if (before === undefined && accepted.length === 0) { A.free(doc); continue }
          }
        }
        batch.set(key, doc)
        merged.set(key, { doc, before, received })
      }
      const updated: Array<{ key: string, meta: DocMeta<S>, live?: Live<S>, keep?: boolean }> = []
      for (const [key, m] of merged) {
        if ('prepared' in m) {
          this.#seq += 1
          const bytes = m.prior === undefined ? { snapshot: m.received } : { chunk: m.received }
          updated.push({ key, meta: this.#stageBytes(ops, key, m.prior, this.#seq, m.prepared.heads, this.#summarise(key, m.prepared.states.at(-1) as A.Doc<any>), bytes, false) })
          continue
        }
        const { doc, before, received } = m
        if (before !== undefined && sameHeads(A.getHeads(doc), before.meta.heads)) {
          // Nothing new, but loadIncremental may have replaced the document object.
          this.#cache.set(key, { doc, meta: before.meta })
          continue
        }
        this.#seq += 1
        const live = this.#stage(ops, key, doc, before, this.#seq, received)
        updated.push({ key, meta: live.meta, live, keep: before !== undefined })
      }
      if (ops.length === 0) return { changed: [], refused, parked, quarantined }
      try {
        await this.#commit.write(ops)
      } catch (err) {
        forget()
        throw err
      }
      this.#parkedCount += parked
      for (const { key, meta, live, keep } of updated) {
        // A document new here (most of an initial sync) is not kept live: it
        // would only push out documents in use, and its wasm memory is
        // returned at once. It loads again on demand.
        if (live !== undefined) {
          if (keep === true) this.#cache.set(key, live)
          else A.free(live.doc)
        }
        this.emit('change', { key, seq: meta.seq, origin: 'remote', meta })
      }
      const changed = updated.map(u => u.key)
      // A roster or account that changed, or a change to one that was
      // refused, may settle what a parked change waits for; so may any change
      // to a document whose parked changes wait for a dependency.
      if (this.#parkedCount > 0 && [...changed, ...refused.map(r => r.key)].some(k => rank(k) !== Infinity || this.#waitingDeps.has(k))) this.#retryParked()
      return { changed, refused, parked, quarantined }
    })
  }

  /**
   * True when a document the checker prepared can be stored without being
   * loaded here: nothing of it is live here (a cached document would go
   * stale), its next change is not a compaction (which saves it whole),
   * no change anywhere is parked (admitting one must unpark it), and, for a
   * document this node holds, the bytes are exactly the new changes, to be
   * stored as its next chunk.
   */
  #canStorePrepared (key: string, prep: PreparedDoc, prior: DocMeta<S> | undefined, parts: Uint8Array[]): boolean {
    if (this.#parkedCount > 0 || this.#cache.peek(key) !== undefined) return false
    if (prior === undefined) return true
    if (prior.local === true || this.#compactNext(prior) || !sameHeads(prep.changes[0]?.deps ?? [], prior.heads)) return false
    const chunks = splitChunks(concat(parts))
    return chunks.length === prep.changes.length && chunks.every(c => c.type === 1)
  }

  /**
   * Judges a prepared document's new changes on the states the checker
   * handed back. Returns the signature writes when every change is
   * admitted, else undefined: the caller then loads the document and
   * judges it the whole way, which parks or refuses what it must.
   */
  async #admitPrepared (key: string, prep: PreparedDoc, sigs: SigLookup, batch: Map<string, A.Doc<any>>): Promise<BatchOp[] | undefined> {
    const admission = this.#admission as ChangeAdmission
    const states = new Map<string, ChangeStates>(prep.changes.map((c, j) => [c.hash, {
      before: j === 0 ? prep.before : prep.states[j - 1],
      after: prep.states[j],
      touched: touchedMap(prep.touched[j] ?? [])
    }]))
    const admitted = new Set<string>()
    const others = this.#at(batch)
    // This document's own states: only those of changes already admitted (never one not yet judged).
    const at: JudgeContext['at'] = async (k, heads, fn) => {
      if (k !== key) return await others(k, heads, fn)
      const j = heads.length === 1 ? prep.changes.findIndex(c => c.hash === heads[0]) : -1
      return j >= 0 && admitted.has(heads[0] as string) ? fn(prep.states[j]) : undefined
    }
    const ctx: JudgeContext = { key, doc: undefined, states, at, wasRefused: this.#wasRefused }
    const ops: BatchOp[] = []
    for (const change of prep.changes) {
      const sig = sigFor(sigs, change.hash)
      const verdict = await admission.judge(ctx, change, sig, 'remote')
      if (!verdict.ok || sig === undefined) return undefined
      admitted.add(change.hash)
      ops.push({ type: 'put', sublevel: this.#sig, key: `${key}\x00${change.hash}`, value: sig })
    }
    return ops
  }

  /**
   * Starts the checks `admitRemote(items)` would make, now, against what
   * this node holds now: a puller screens the next batch in the checker's
   * worker while this thread admits the one before. Pass the result to
   * `admitRemote` with the same items; a document that changed here in the
   * meantime is checked again there. Nothing is stored or quarantined here.
   */
  screenRemote (items: RemoteDoc[]): Screening {
    const guard = this.#guard
    if (guard === undefined) return { verdicts: Promise.resolve(new Map()) }
    const verdicts = (async () => {
      const byKey = byKeyOf(items)
      const keys = [...byKey.keys()]
      const metas = await this.#storedMany(keys)
      const candidates = await this.#checkItems(keys, byKey, metas)
      const got = await guard.checker.check(candidates.map(c => c.item))
      return new Map(candidates.map((c, i) => [c.key, { base: c.base, verdict: got[i] as CheckVerdict }]))
    })()
    // A screening nobody awaits (the session ended) must not be an unhandled rejection; admitRemote checks again.
    return { verdicts: verdicts.catch(() => new Map()) }
  }

  /** What the checker loads for each key: the bytes a peer sent, on top of what this node holds (named by its heads). */
  async #checkItems (keys: string[], byKey: Map<string, { bytes: Uint8Array[] }>, metas: Array<DocMeta<S> | undefined>): Promise<Array<{ key: string, base: string, item: CheckItem }>> {
    const wanted = keys.map((key, i) => ({ key, meta: metas[i] })).filter(c => c.meta?.local !== true)
    const bases = await this.#savedBytesMany(wanted.map(c => c.key), wanted.map(c => c.meta))
    return wanted.map(({ key, meta }, i) => {
      const item: CheckItem = { bytes: concat((byKey.get(key) as { bytes: Uint8Array[] }).bytes) }
      const base = bases[i]
      if (base !== undefined) item.base = base
      // The roster and accounts are judged on their Automerge documents (conflicts and all).
      if (this.#admission !== undefined && this.#admission.referenceRank(key) === undefined) item.prepare = true
      return { key, base: baseOf(meta), item }
    })
  }

  /**
   * The keys whose documents may be loaded here: each document as it would
   * be once merged is loaded first by the guard's checker, and one that
   * breaks a limit (or was quarantined before) is quarantined and left out.
   * Bytes that do not decode at all reject the batch, as without a guard.
   * Verdicts from `screenRemote` stand for documents unchanged since.
   */
  async #screen (keys: string[], byKey: Map<string, { bytes: Uint8Array[] }>, metas: Array<DocMeta<S> | undefined>, peer: string | undefined, screening: Screening | undefined): Promise<{ kept: Set<string>, quarantined: Quarantined[], prepared: Map<string, PreparedDoc> }> {
    const kept = new Set(keys)
    const quarantined: Quarantined[] = []
    const prepared = new Map<string, PreparedDoc>()
    const guard = this.#guard
    if (guard === undefined) return { kept, quarantined, prepared }
    const candidates = keys
      .map((key, i) => ({ key, meta: metas[i], bytes: concat((byKey.get(key) as { bytes: Uint8Array[] }).bytes) }))
      .filter(c => c.meta?.local !== true)
      .map(c => ({ ...c, id: quarantineId(c.bytes) }))
    const known = await guard.quarantine.known(candidates.map(c => c.id))
    const toCheck = candidates.filter((c, i) => {
      if (known[i] !== true) return true
      kept.delete(c.key)
      quarantined.push({ key: c.key, id: c.id, reason: 'these bytes were quarantined before' })
      return false
    })
    // Verdicts screened earlier stand for documents that have not changed here since.
    const early = await screening?.verdicts
    const verdicts = new Map<string, CheckVerdict>()
    const late = toCheck.filter(c => {
      const screened = early?.get(c.key)
      if (screened === undefined || screened.base !== baseOf(c.meta)) return true
      verdicts.set(c.key, screened.verdict)
      return false
    })
    const lateItems = await this.#checkItems(late.map(c => c.key), byKey, late.map(c => c.meta))
    const got = await guard.checker.check(lateItems.map(c => c.item))
    lateItems.forEach((c, i) => verdicts.set(c.key, got[i] as CheckVerdict))
    for (const c of toCheck) {
      const verdict = verdicts.get(c.key) as CheckVerdict
      if (verdict.ok) {
        if (verdict.prepared !== undefined) prepared.set(c.key, verdict.prepared)
        continue
      }
      if (!verdict.quarantine) throw new DwError('INVALID_MESSAGE', `undecodable changes for ${c.key}: ${verdict.reason}`)
      kept.delete(c.key)
      const entry: Parameters<Quarantine['add']>[0] = { id: c.id, key: c.key, reason: verdict.reason, size: c.bytes.length }
      if (peer !== undefined) entry.peer = peer
      await guard.quarantine.add(entry)
      quarantined.push({ key: c.key, id: c.id, reason: verdict.reason })
    }
    return { kept, quarantined, prepared }
  }

  /**
   * The bytes without the changes whose dependencies this node lacks. A
   * whole document (a document chunk) carries its own history and passes
   * as it is. A change built on a change this node refused is refused too
   * (and remembered); one whose dependency has not arrived would wait
   * inside Automerge, unsaved and unjudged, so it is parked instead (with
   * its signature) and judged once its document changes.
   */
  async #withDepsHere (key: string, bytes: Uint8Array, base: A.Doc<any> | undefined, sigs: SigLookup, refused: Refusal[], ops: BatchOp[]): Promise<{ bytes: Uint8Array, parked: number }> {
    const chunks = splitChunks(bytes)
    if (chunks.some(c => c.type === 0)) return { bytes, parked: 0 }
    const changes = topological(chunks.map(c => ({ bytes: c.bytes, info: changeHeader(c.bytes) })))
    const parkedNow = await this.#parked.getMany(changes.map(c => `${key}\x00${c.info.hash as string}`))
    const kept = new Set<string>()
    const refusedHere = new Set<string>()
    const out: Uint8Array[] = []
    let parked = 0
    for (const [i, { bytes: change, info }] of changes.entries()) {
      const hash = info.hash as string
      const missing = info.deps.filter(d => !kept.has(d) && (base === undefined || !A.hasHeads(base, [d])))
      if (missing.length === 0) {
        kept.add(hash)
        out.push(change)
        continue
      }
      const parkedKey = `${key}\x00${hash}`
      const wasParked = parkedNow[i] !== undefined
      const sig = sigFor(sigs, hash)
      if (missing.some(d => refusedHere.has(d)) || await this.#wasRefused(missing)) {
        refusedHere.add(hash)
        refused.push({ key, hash, reason: 'it depends on a refused change', message: info.message })
        ops.push({ type: 'put', sublevel: this.#refusedHashes, key: hash, value: new Uint8Array(0) })
        if (wasParked) { ops.push({ type: 'del', sublevel: this.#parked, key: parkedKey }); parked -= 1 }
      } else if (!wasParked && sig !== undefined && this.#parkedCount + parked < MAX_PARKED) {
        ops.push({ type: 'put', sublevel: this.#parked, key: parkedKey, value: concat([sig, change]) })
        parked += 1
        this.#waitingDeps.add(key)
      }
    }
    return { bytes: concat(out), parked }
  }

  /** Parked changes are judged again once a roster or account they may reference has changed. */
  #retryParked (): void {
    if (this.#retrying !== undefined) { this.#retryAgain = true; return }
    this.#retrying = (async () => {
      do {
        this.#retryAgain = false
        const items = new Map<string, Array<[string, Uint8Array, Uint8Array]>>()
        for await (const [k, v] of this.#parked.iterator()) {
          const at = k.indexOf('\x00')
          const key = k.slice(0, at)
          items.set(key, [...(items.get(key) ?? []), [k.slice(at + 1), v.slice(0, 64), v.slice(64)]])
        }
        if (items.size === 0) return
        const remote: RemoteDoc[] = [...items].map(([key, entries]) => ({
          key,
          bytes: concat(entries.map(e => e[2])),
          sigs: packSigs(entries.map(e => [e[0], e[1]]))
        }))
        const result = await this.admitRemote(remote).catch(() => undefined)
        if (result !== undefined && result.refused.length > 0) this.emit('refused', result.refused)
      } while (this.#retryAgain)
    })().finally(() => { this.#retrying = undefined })
  }

  #retryAgain = false
  /** Documents with parked changes waiting for a dependency (not a referenced state). */
  readonly #waitingDeps = new Set<string>()

  /**
   * Signs, as this node, every change of every replicated document that has
   * no signature yet: history written before changes were signed, which a
   * mesh founder vouches for once (docs/trust.md, upgrading). Returns how
   * many changes it signed.
   */
  async attestUnsigned (): Promise<number> {
    const admission = this.#admission
    if (admission === undefined) return 0
    let signed = 0
    const keys: string[] = []
    for await (const [key, meta] of this.#meta.iterator()) if (meta.local !== true) keys.push(key)
    for (const key of keys) {
      const hashes = await this.read(key, doc => doc === undefined ? [] : A.getChangesMetaSince(doc, []).map(m => m.hash))
      const have = await this.#sig.getMany(hashes.map(h => `${key}\x00${h}`))
      const ops: BatchOp[] = []
      hashes.forEach((h, i) => {
        if (have[i] === undefined) ops.push({ type: 'put', sublevel: this.#sig, key: `${key}\x00${h}`, value: admission.sign(h) })
      })
      if (ops.length > 0) await this.#commit.write(ops)
      signed += ops.length
    }
    return signed
  }

  /** Changes of `key` that a holder of `heads` lacks (or the whole document when it cannot tell), with their signatures. */
  async changesSince (key: string, heads: string[]): Promise<{ bytes: Uint8Array, sigs: Uint8Array } | undefined> {
    const out = await this.read(key, (doc) => {
      if (doc === undefined) return undefined
      if (heads.length > 0 && A.hasHeads(doc, heads)) {
        return { bytes: A.saveSince(doc, heads), hashes: A.getChangesMetaSince(doc, heads).map(m => m.hash) as string[] | undefined }
      }
      return { bytes: saveUncompressed(doc), hashes: undefined }
    })
    if (out === undefined) return undefined
    if (out.hashes === undefined) return { bytes: out.bytes, sigs: await this.#allSigs(key) }
    const sigs = await this.#sig.getMany(out.hashes.map(h => `${key}\x00${h}`))
    const entries: Array<[string, Uint8Array]> = []
    out.hashes.forEach((h, i) => { const s = sigs[i]; if (s !== undefined) entries.push([h, s]) })
    return { bytes: out.bytes, sigs: packSigs(entries) }
  }

  /**
   * For each document, the changes of its latest update as they are stored
   * (its newest chunk: the changes since the heads it had before), with
   * their signatures, read without loading anything: three reads for all of
   * them. Undefined for a document without such a chunk (new here, or
   * compacted since), whose chunk holds a compressed change, which a
   * receiver could only read by inflating it, or whose chunk's newest
   * changes are not all its heads (another head came in an earlier chunk).
   * A server pushes these on a live link (messages.ts `push`).
   */
  async latestChanges (keys: string[]): Promise<Array<{ bytes: Uint8Array, sigs: Uint8Array } | undefined>> {
    const metas = await this.#storedMany(keys)
    const pushable = (meta: DocMeta<S> | undefined): meta is DocMeta<S> => meta !== undefined && meta.local !== true && meta.chunks > 0
    const stored = await this.#chunk.getMany(keys.flatMap((key, i) => { const meta = metas[i]; return pushable(meta) ? [chunkKey(key, meta.chunks - 1)] : [] }))
    let at = 0
    const found = keys.map((key, i) => {
      if (!pushable(metas[i])) return undefined
      const bytes = stored[at++]
      if (bytes === undefined) return undefined
      const chunks = splitChunks(bytes)
      if (chunks.some(c => c.type !== 1)) return undefined
      const headers = chunks.map(c => changeHeader(c.bytes))
      // Only a chunk whose newest changes are all the document's heads: one
      // that leaves out a head (a concurrent change stored in an earlier
      // chunk, or a meta read before a newer write) would let a receiver
      // that holds its dependencies think it holds everything this node does.
      const built = new Set(headers.flatMap(h => h.deps))
      if (!sameHeads(headers.map(h => h.hash).filter(h => !built.has(h)), (metas[i] as DocMeta<S>).heads)) return undefined
      return { key, bytes, hashes: headers.map(h => h.hash) }
    })
    const sigs = await this.#sig.getMany(found.flatMap(f => f === undefined ? [] : f.hashes.map(h => `${f.key}\x00${h}`)))
    at = 0
    return found.map(f => {
      if (f === undefined) return undefined
      const entries: Array<[string, Uint8Array]> = []
      for (const h of f.hashes) {
        const sig = sigs[at++]
        if (sig !== undefined) entries.push([h, sig])
      }
      return { bytes: f.bytes, sigs: packSigs(entries) }
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

  /** Resolves when every write so far is on disk, parked changes judged again included. */
  async flush (): Promise<void> {
    await this.#retrying
    await this.#commit.idle()
  }

  /**
   * Gives a document pushed out of the cache back to Automerge at once,
   * rather than when the garbage collector gets to it: until then its wasm
   * memory stays taken, and the wasm memory grows to the most ever taken
   * and never shrinks. Done under the key's lock, after whatever uses the
   * document now, and only if that did not carry the same engine state on
   * into the cache (A.change and loadIncremental keep it) or free it itself.
   */
  #release (key: string, doc: A.Doc<any>): void {
    const handle = A.getBackend(doc)
    void this.#lock.run(key, async () => {
      const now = this.#cache.peek(key)
      if (now !== undefined && A.getBackend(now.doc) === handle) return
      // Freed already (wasm-bindgen zeroes the pointer): a second free throws.
      if ((handle as unknown as { __wbg_ptr?: number }).__wbg_ptr === 0) return
      A.free(doc)
    }).catch(() => {})
  }

  /** The cached document, or it loaded from disk; `known` skips the meta read when the caller has it (null: known absent). */
  async #live (key: string, known?: DocMeta<S> | null, saved?: Uint8Array): Promise<Live<S> | undefined> {
    const cached = this.#cache.get(key)
    if (cached !== undefined) return cached
    const meta = known === undefined ? await this.#stored(key) : known ?? undefined
    if (meta === undefined) return undefined
    const bytes = saved ?? await this.#withChunks(key, meta, await this.#snap.get(key))
    const live = { doc: A.load<any>(bytes, { actor: this.actor }), meta }
    this.#cache.set(key, live)
    return live
  }

  async #commitLocal (key: string, doc: A.Doc<any>, before: Live<S> | undefined, local = false, extra: BatchOp[] = []): Promise<DocChangeEvent<S>> {
    const ops: BatchOp[] = [...extra]
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
    const event: DocChangeEvent<S> = { key, seq, origin: 'local', meta: live.meta }
    this.emit('change', event)
    return event
  }

  /**
   * Adds to `ops` the writes that record `doc` as the new state of `key`.
   * `snapshot` is the peer's bytes of a document we did not have: stored as
   * received, which saves re-encoding it.
   */
  #stage (ops: BatchOp[], key: string, doc: A.Doc<any>, before: Live<S> | undefined, seq: number, snapshot: Uint8Array | undefined, local = false): Live<S> {
    const prior = before?.meta
    const bytes = prior === undefined
      ? { snapshot: snapshot ?? saveUncompressed(doc) }
      : this.#compactNext(prior) ? { snapshot: saveUncompressed(doc) } : { chunk: A.saveSince(doc, prior.heads) }
    const meta = this.#stageBytes(ops, key, prior, seq, A.getHeads(doc), this.#summarise(key, doc), bytes, local)
    return { doc, meta }
  }

  /** True when the document's next change is stored as a new snapshot, its chunks folded in. */
  #compactNext (prior: DocMeta<S>): boolean {
    return prior.chunks + 1 >= this.#compactAfter
  }

  /** Adds to `ops` the writes that record a new state of `key`: a snapshot (replacing its chunks) or one more chunk. */
  #stageBytes (ops: BatchOp[], key: string, prior: DocMeta<S> | undefined, seq: number, heads: string[], summary: S, bytes: { snapshot: Uint8Array } | { chunk: Uint8Array }, local: boolean): DocMeta<S> {
    const meta: DocMeta<S> = { heads, seq, chunks: prior?.chunks ?? 0, summary }
    if (local || prior?.local === true) meta.local = true
    if ('snapshot' in bytes) {
      ops.push({ type: 'put', sublevel: this.#snap, key, value: bytes.snapshot })
      for (let n = 0; n < meta.chunks; n++) ops.push({ type: 'del', sublevel: this.#chunk, key: chunkKey(key, n) })
      meta.chunks = 0
    } else {
      ops.push({ type: 'put', sublevel: this.#chunk, key: chunkKey(key, meta.chunks), value: bytes.chunk })
      meta.chunks += 1
    }
    if (prior !== undefined) ops.push({ type: 'del', sublevel: this.#feed, key: seqKey(prior.seq) })
    ops.push({ type: 'put', sublevel: this.#feed, key: seqKey(seq), value: key })
    ops.push({ type: 'put', sublevel: this.#meta, key, value: meta })
    ops.push(...this.#indexes.ops(key, prior, meta))
    return meta
  }
}

/** Automerge records change times in whole seconds. */
function changeOptions (ms: number | undefined, message: string | undefined): { time: number, message?: string } {
  const out: { time: number, message?: string } = { time: timeOf(ms) }
  if (message !== undefined) out.message = message
  return out
}

function atHeads<T> (doc: A.Doc<any>, heads: string[], fn: (doc: any) => T): T | undefined {
  if (!A.hasHeads(doc, heads)) return undefined
  return fn(A.view(doc, heads))
}

/** Enough of a change to order it: its hash and dependencies. */
interface Ordered { info: { hash: string, deps: string[] } }


/** Hash and message of each change in some bytes, for reporting a refusal (empty when they do not parse). */
function describeChanges (bytes: Uint8Array): Array<{ hash: string, message: string | null }> {
  try {
    const doc = A.load(bytes)
    try {
      return A.getChangesMetaSince(doc, []).map(m => ({ hash: m.hash, message: m.message }))
    } finally {
      A.free(doc)
    }
  } catch {
    return [{ hash: '', message: null }]
  }
}

/** Changes in an order where each comes after everything it depends on (Kahn's algorithm; ties by hash, so the order is the same everywhere). */
function topological<T extends Ordered> (changes: T[]): T[] {
  const byHash = new Map(changes.map(c => [c.info.hash as string, c]))
  const waiting = new Map<string, number>()
  const children = new Map<string, string[]>()
  for (const c of changes) {
    const hash = c.info.hash as string
    const inSet = c.info.deps.filter(d => byHash.has(d))
    waiting.set(hash, inSet.length)
    for (const d of inSet) children.set(d, [...(children.get(d) ?? []), hash])
  }
  const ready = [...waiting].filter(([, n]) => n === 0).map(([h]) => h).sort()
  const out: T[] = []
  while (ready.length > 0) {
    const hash = ready.shift() as string
    out.push(byHash.get(hash) as T)
    for (const child of children.get(hash) ?? []) {
      const n = (waiting.get(child) as number) - 1
      waiting.set(child, n)
      if (n === 0) ready.push(child)
    }
  }
  return out
}

function timeOf (ms: number | undefined): number {
  // Automerge records change times in whole seconds.
  return Math.floor((ms ?? Date.now()) / 1000)
}

/** One entry per key: two items for the same key (rare) are one longer chunk, with the signatures of both. */
function byKeyOf (items: RemoteDoc[]): Map<string, { bytes: Uint8Array[], sigs: SigLookup }> {
  const byKey = new Map<string, { bytes: Uint8Array[], sigs: SigLookup }>()
  for (const item of items) {
    const entry = byKey.get(item.key) ?? { bytes: [] as Uint8Array[], sigs: new Map() as SigLookup }
    entry.bytes.push(item.bytes)
    for (const [h, s] of unpackSigs(item.sigs, item.sigEntry)) entry.sigs.set(h, s)
    byKey.set(item.key, entry)
  }
  return byKey
}

/** The state a document was checked on: its heads here, or none. */
function baseOf (meta: { heads: string[] } | undefined): string {
  return meta === undefined ? '' : meta.heads.join(',')
}
