import type { DocStore } from '../crdt/doc-store.ts'
import type { RecordSummary } from '../crdt/summary.ts'
import type { Startable } from '../lifecycle.ts'
import { copyTarget, shouldFetch, type CopyTargets } from './copy-policy.ts'

/** A file of a live record with fewer copies than its target. */
export interface BelowTarget {
  sha256: string
  size: number
  /** A record that names the file (`<kind>/<id>`), and its name. */
  record: string
  name: string
  target: number
  copies: number
}

export interface CopyStatus {
  /** When the last pass over the records ended; undefined before the first. */
  checkedAt: string | undefined
  /** Files below their target, and the first few (oldest record first, then smallest). */
  belowTarget: number
  files: BelowTarget[]
  /** Whether this node fetches files for others (config `files.copy`), and why it may not right now. */
  fetching: boolean
  blocked?: string
}

export interface CopierInit {
  self: string
  docs: DocStore<RecordSummary>
  /** The mesh-wide targets and the non-revoked roster members. */
  mesh: () => Promise<{ targets: CopyTargets, members: string[] }>
  /** Peer ids whose node documents list the blob. */
  holders: (sha256: string) => string[]
  /** Whether the blob is here for an accepted reference. */
  present: (sha256: string) => Promise<boolean>
  connectedPeers: () => string[]
  /** Fetches the blob through the node's fetcher (its per-peer and rate limits apply). */
  fetch: (sha256: string, size: number) => Promise<void>
  /** A peer served the blob: the references of these records to it are accepted here. */
  fetched: (sha256: string, records: string[]) => Promise<void>
  /** Whether a blob of this size fits above the free-space reserve. */
  room: (size: number) => Promise<boolean>
  /** Fetch for others at all (default true); status is kept either way. */
  copy?: boolean
  /** Between passes (default 60 s). */
  scanMs?: number
  /** How long a file may stay below target before any site that lacks it fetches it (default 10 min). */
  graceMs?: number
  /** Files fetched at once (default 2). */
  concurrency?: number
  /** Files fetched in one pass at most (default 500); the next pass takes the rest. */
  maxPerPass?: number
  onError?: (err: unknown) => void
}

interface Candidate { sha256: string, size: number, createdAt: string, records: string[], target: number, holders: Set<string>, name: string }

const SHOWN = 5

/**
 * Background copying: every `scanMs` a pass over the live records finds the
 * files below their copy target (from the replicated holdings), and this
 * node fetches those it is chosen for (rendezvous ranking among the
 * members that lack the file), or any that has stayed below target for the
 * grace period; oldest record first, then smallest file, while the disk
 * has room above the reserve. A pass derives everything from replicated
 * state, so a restart loses nothing but the grace clocks; a transfer cut
 * by a stop resumes from its partial file on the next pass.
 */
export class Copier implements Startable {
  readonly #o: CopierInit
  readonly #scanMs: number
  readonly #graceMs: number
  /** sha256 -> when this node first saw the file below target. */
  #belowSince = new Map<string, number>()
  #status: CopyStatus
  #timer: NodeJS.Timeout | undefined
  /** When the timer fires (ms since epoch), and when the last pass ended. */
  #dueAt = 0
  #lastEnd = 0
  #pass: Promise<void> | undefined
  readonly #onChange = (event: { key: string }): void => {
    if (/^(dataset|model|report|node|mesh)\//.test(event.key)) this.#kick()
  }
  #stopped = false
  readonly #stop = Promise.withResolvers<void>()

  constructor (init: CopierInit) {
    this.#o = init
    this.#scanMs = init.scanMs ?? 60_000
    this.#graceMs = init.graceMs ?? 10 * 60_000
    this.#status = { checkedAt: undefined, belowTarget: 0, files: [], fetching: init.copy !== false }
  }

  start (): void {
    // The first pass soon after start, not a whole interval later.
    this.#next(Math.min(this.#scanMs, 5000))
    this.#o.docs.on('change', this.#onChange)
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#o.docs.off('change', this.#onChange)
    clearTimeout(this.#timer)
    this.#stop.resolve()
    await this.#pass
  }

  status (): CopyStatus {
    return { ...this.#status, files: [...this.#status.files] }
  }

  /** One pass now (tests; and the timer). */
  async runOnce (): Promise<void> {
    if (this.#pass !== undefined) { await this.#pass; return }
    this.#pass = this.#run().catch(err => this.#o.onError?.(err)).finally(() => { this.#pass = undefined })
    await this.#pass
  }

  #next (ms: number): void {
    if (this.#stopped) return
    clearTimeout(this.#timer)
    this.#dueAt = Date.now() + ms
    this.#timer = setTimeout(() => {
      this.#dueAt = Infinity
      void this.runOnce().finally(() => {
        this.#lastEnd = Date.now()
        this.#next(this.#scanMs)
      })
    }, ms)
  }

  /**
   * A record, a node's holdings or the roster changed: the next pass comes
   * sooner, but never sooner than 10 s (or `scanMs`) after the last ended,
   * so a burst of changes costs one pass, not one each.
   */
  #kick (): void {
    const soonest = this.#lastEnd + Math.min(this.#scanMs, 10_000)
    if (this.#dueAt === Infinity || this.#dueAt <= soonest) return
    this.#next(Math.max(0, soonest - Date.now()))
  }

  async #run (): Promise<void> {
    const { targets, members } = await this.#o.mesh()
    const self = this.#o.self
    const byHash = new Map<string, Candidate>()
    for (const kind of ['dataset', 'model', 'report']) {
      for await (const [key, meta] of this.#o.docs.scan(`${kind}/`)) {
        if (this.#stopped) return
        const s = meta.summary
        if (s.deleted || s.blobs === undefined || s.blobs.length === 0) continue
        const target = copyTarget(targets, s)
        for (const [i, sha] of s.blobs.entries()) {
          const seen = byHash.get(sha)
          if (seen !== undefined) {
            seen.target = Math.max(seen.target, target)
            seen.records.push(key)
            if (s.createdAt < seen.createdAt) seen.createdAt = s.createdAt
            continue
          }
          byHash.set(sha, { sha256: sha, size: s.sizes?.[i] ?? 0, createdAt: s.createdAt, records: [key], target, holders: new Set(), name: s.name })
        }
      }
    }
    const memberSet = new Set(members)
    const below: Candidate[] = []
    for (const c of byHash.values()) {
      for (const peer of this.#o.holders(c.sha256)) if (memberSet.has(peer)) c.holders.add(peer)
      // This node's own copy counts before its node document says so.
      if (!c.holders.has(self) && c.holders.size < c.target && await this.#o.present(c.sha256)) c.holders.add(self)
      if (c.holders.size < c.target) below.push(c)
    }
    below.sort((a, b) => a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.size - b.size)
    const now = Date.now()
    const since = new Map<string, number>()
    for (const c of below) since.set(c.sha256, this.#belowSince.get(c.sha256) ?? now)
    this.#belowSince = since
    const status: CopyStatus = {
      checkedAt: new Date().toISOString(),
      belowTarget: below.length,
      files: below.slice(0, SHOWN).map(c => ({ sha256: c.sha256, size: c.size, record: c.records[0] as string, name: c.name, target: c.target, copies: c.holders.size })),
      fetching: this.#o.copy !== false
    }
    this.#status = status
    if (this.#o.copy === false || !memberSet.has(self)) return
    const due = below.filter(c => shouldFetch({
      sha256: c.sha256, target: c.target, members, holders: c.holders, self, belowSince: since.get(c.sha256) as number, now, graceMs: this.#graceMs
    })).slice(0, this.#o.maxPerPass ?? 500)
    let at = 0
    const worker = async (): Promise<void> => {
      while (!this.#stopped && at < due.length) {
        const c = due[at++] as Candidate
        const connected = new Set(this.#o.connectedPeers())
        if (![...c.holders].some(p => connected.has(p))) continue
        if (!await this.#o.room(c.size)) {
          status.blocked = 'not enough free disk above the reserve'
          at = due.length
          return
        }
        try {
          // A stop does not wait for a transfer: it resumes from its partial file next time.
          await Promise.race([this.#o.fetch(c.sha256, c.size), this.#stop.promise])
          if (this.#stopped) return
          await this.#o.fetched(c.sha256, c.records)
        } catch {
          // No holder could serve it now: the next pass tries again.
        }
      }
    }
    await Promise.all(Array.from({ length: this.#o.concurrency ?? 2 }, worker))
  }
}
