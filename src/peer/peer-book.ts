import { EventEmitter } from 'node:events'
import type { PeerId } from '@libp2p/interface'
import type { Sublevel } from '../db.ts'
import { DwError } from '../errors.ts'
import { parsePeerAddress, parsePeerId, parsePeerName as parseName, withPeerId } from './peer-address.ts'
import { patchLink, type LinkPatch, type LinkProfile } from './link-profile.ts'

/** A peer this node trusts: it may connect and sync. */
export type PeerEntry = {
  peerId: string
  name?: string
  /** Dialable multiaddrs, each ending in `/p2p/<peerId>`. */
  addrs: string[]
  /** Milliseconds since the epoch. */
  addedAt: number
  lastSyncAt?: number
  lastError?: string
  /** How this node uses its link to the peer: rate cap, files window, metered. */
  link?: LinkProfile
}

/** A peer that tried to connect without being trusted, awaiting an admin. */
export type PendingPeer = {
  peerId: string
  /** The address it connected from, ending in `/p2p/<peerId>`. */
  addr: string
  firstSeenAt: number
  lastSeenAt: number
  attempts: number
}

/** Fields `update` may change; `null` clears `lastError`. */
export type PeerPatch = {
  name?: string
  lastSyncAt?: number
  lastError?: string | null
}

export interface PeerBookInit {
  trusted: Sublevel<PeerEntry>
  pending: Sublevel<PendingPeer>
  /** This node's own peer id, which can never be added. */
  self: string
  /** Cap on remembered pending requests; peer ids cost nothing to mint. */
  maxPending?: number
  /** How long a pending request is kept after its peer was last seen (default 7 days). */
  pendingTtlMs?: number
  /** The clock, for tests. */
  now?: () => number
}

const DEFAULT_MAX_PENDING = 256
/**
 * A peer that wants in keeps redialling (every minute at most, with the
 * default backoff), so its request stays fresh; one not seen for a week has
 * given up, been reconfigured or was a stranger passing by. A week also
 * covers an admin who looks at a remote site once a week.
 */
export const PENDING_TTL_MS = 7 * 24 * 60 * 60 * 1000
/** A peer retrying in a loop should not cost a disk write per attempt. */
const PENDING_WRITE_INTERVAL_MS = 10_000

/**
 * The peers this node trusts, and the untrusted ones that knocked, persisted
 * in two LevelDB sublevels and mirrored in memory so the connection gater can
 * answer `isTrusted` synchronously on every handshake.
 */
export class PeerBook extends EventEmitter<{ link: [peerId: string] }> {
  readonly #trustedDb: Sublevel<PeerEntry>
  readonly #pendingDb: Sublevel<PendingPeer>
  readonly #self: string
  readonly #maxPending: number
  readonly #pendingTtlMs: number
  readonly #now: () => number
  readonly #trusted = new Map<string, PeerEntry>()
  readonly #pending = new Map<string, PendingPeer>()
  readonly #pendingWrittenAt = new Map<string, number>()
  #queue: Promise<unknown> = Promise.resolve()

  private constructor (init: PeerBookInit) {
    super()
    this.#trustedDb = init.trusted
    this.#pendingDb = init.pending
    this.#self = init.self
    this.#maxPending = init.maxPending ?? DEFAULT_MAX_PENDING
    this.#pendingTtlMs = init.pendingTtlMs ?? PENDING_TTL_MS
    this.#now = init.now ?? Date.now
  }

  /** Load both sublevels into memory and return a ready peer book. */
  static async open (init: PeerBookInit): Promise<PeerBook> {
    const book = new PeerBook(init)
    for await (const [key, entry] of init.trusted.iterator()) book.#trusted.set(key, entry)
    for await (const [key, entry] of init.pending.iterator()) {
      // A crash between approve's two writes leaves a stale request behind.
      if (book.#trusted.has(key)) await init.pending.del(key)
      else book.#pending.set(key, entry)
    }
    await book.#exclusive(async () => { await book.#dropExpired(book.#now()) })
    return book
  }

  /**
   * Trust the peer at `address`, which must be a full multiaddr ending in
   * `/p2p/<peerId>`. Adding a known peer merges the address into its list
   * (and renames it when `name` is given). A pending request from the same
   * peer is settled by this.
   */
  async add (address: string, name?: string): Promise<PeerEntry> {
    const { peerId, addr } = parsePeerAddress(address, this.#self)
    const cleanName = name === undefined ? undefined : parseName(name)
    return await this.#exclusive(async () => {
      const existing = this.#trusted.get(peerId)
      const entry: PeerEntry = existing === undefined
        ? { peerId, addrs: [addr], addedAt: this.#now() }
        : { ...existing, addrs: existing.addrs.includes(addr) ? existing.addrs : [...existing.addrs, addr] }
      if (cleanName !== undefined) entry.name = cleanName
      await this.#putTrusted(entry)
      return structuredClone(entry)
    })
  }

  /** Stop trusting a peer. Open connections stay up until the caller hangs up. */
  async remove (peerId: string): Promise<void> {
    const id = parsePeerId(peerId)
    await this.#exclusive(async () => {
      if (!this.#trusted.has(id)) throw new DwError('NOT_FOUND', `peer ${id} is not in the peer book`)
      await this.#trustedDb.del(id)
      this.#trusted.delete(id)
    })
  }

  /** Trusted peers, oldest first. */
  list (): PeerEntry[] {
    return [...this.#trusted.values()]
      .sort((a, b) => a.addedAt - b.addedAt || a.peerId.localeCompare(b.peerId))
      .map(entry => structuredClone(entry))
  }

  get (peerId: string): PeerEntry | undefined {
    const entry = this.#trusted.get(peerId)
    return entry === undefined ? undefined : structuredClone(entry)
  }

  /** A trusted peer's link profile, from memory (read for every paced slice and every background fetch). */
  link (peerId: string): Readonly<LinkProfile> | undefined {
    return this.#trusted.get(peerId)?.link
  }

  /**
   * Change a trusted peer's link profile. The patch is checked as a whole
   * first: a bad value changes nothing. Emits `link` once it is stored.
   */
  async setLink (peerId: string, patch: LinkPatch): Promise<PeerEntry> {
    const id = parsePeerId(peerId)
    const entry = await this.#exclusive(async () => {
      const existing = this.#trusted.get(id)
      if (existing === undefined) throw new DwError('NOT_FOUND', `peer ${id} is not in the peer book`)
      const link = patchLink(existing.link, patch)
      const entry: PeerEntry = { ...existing }
      if (link === undefined) delete entry.link
      else entry.link = link
      await this.#trustedDb.put(id, entry)
      this.#trusted.set(id, entry)
      return structuredClone(entry)
    })
    this.emit('link', id)
    return entry
  }

  /** Synchronous, from memory: safe to call on every connection attempt. */
  isTrusted (peerId: string | PeerId): boolean {
    return this.#trusted.has(peerId.toString())
  }

  /** Untrusted peers that tried to connect, most recent first; expired requests are left out. */
  pending (): PendingPeer[] {
    const now = this.#now()
    return [...this.#pending.values()]
      .filter(entry => !this.#expired(entry, now))
      .sort((a, b) => b.lastSeenAt - a.lastSeenAt || a.peerId.localeCompare(b.peerId))
      .map(entry => structuredClone(entry))
  }

  /**
   * Remember that an untrusted peer tried to connect from `addr`. Ignored for
   * trusted peers. Requests expire once their peer has not been seen for
   * `pendingTtlMs`; when `maxPending` requests are waiting, a new peer takes
   * the place of the one seen longest ago, so the list shows who is knocking
   * now rather than freezing on whoever filled it first.
   */
  async recordPending (peerId: string, addr: string): Promise<void> {
    const id = parsePeerId(peerId)
    const fullAddr = withPeerId(addr, id)
    await this.#exclusive(async () => {
      if (this.#trusted.has(id) || id === this.#self) return
      const now = this.#now()
      await this.#dropExpired(now)
      const existing = this.#pending.get(id)
      if (existing === undefined && this.#pending.size >= this.#maxPending) {
        const oldest = this.#seenLongestAgo()
        if (oldest === undefined) return
        await this.#dropPending(oldest)
      }
      const entry: PendingPeer = existing === undefined
        ? { peerId: id, addr: fullAddr, firstSeenAt: now, lastSeenAt: now, attempts: 1 }
        : { ...existing, addr: fullAddr, lastSeenAt: now, attempts: existing.attempts + 1 }
      this.#pending.set(id, entry)
      const writtenAt = this.#pendingWrittenAt.get(id) ?? 0
      if (existing === undefined || existing.addr !== fullAddr || now - writtenAt >= PENDING_WRITE_INTERVAL_MS) {
        await this.#pendingDb.put(id, entry)
        this.#pendingWrittenAt.set(id, now)
      }
    })
  }

  /**
   * Trust a pending peer. Its address is the one it connected from unless
   * `address` gives a better one: an inbound connection's source port is
   * usually ephemeral, fine for that peer to dial us but not for us to dial it.
   */
  async approve (peerId: string, address?: string, name?: string): Promise<PeerEntry> {
    const id = parsePeerId(peerId)
    const given = address === undefined ? undefined : parsePeerAddress(address, this.#self)
    if (given !== undefined && given.peerId !== id) {
      throw new DwError('INVALID_INPUT', `address ${address} names peer ${given.peerId}, not ${id}`)
    }
    const cleanName = name === undefined ? undefined : parseName(name)
    return await this.#exclusive(async () => {
      await this.#dropExpired(this.#now())
      const request = this.#pending.get(id)
      if (request === undefined) throw new DwError('NOT_FOUND', `no pending request from peer ${id}`)
      const addr = given?.addr ?? request.addr
      const existing = this.#trusted.get(id)
      const entry: PeerEntry = existing === undefined
        ? { peerId: id, addrs: [addr], addedAt: this.#now() }
        : { ...existing, addrs: existing.addrs.includes(addr) ? existing.addrs : [...existing.addrs, addr] }
      if (cleanName !== undefined) entry.name = cleanName
      await this.#putTrusted(entry)
      return structuredClone(entry)
    })
  }

  /** Forget a pending request without trusting the peer. */
  async dismiss (peerId: string): Promise<void> {
    const id = parsePeerId(peerId)
    await this.#exclusive(async () => {
      await this.#dropExpired(this.#now())
      if (!this.#pending.has(id)) throw new DwError('NOT_FOUND', `no pending request from peer ${id}`)
      await this.#dropPending(id)
    })
  }

  /** Record sync bookkeeping (or a new name) for a trusted peer. */
  async update (peerId: string, patch: PeerPatch): Promise<PeerEntry> {
    const id = parsePeerId(peerId)
    const cleanName = patch.name === undefined ? undefined : parseName(patch.name)
    return await this.#exclusive(async () => {
      const existing = this.#trusted.get(id)
      if (existing === undefined) throw new DwError('NOT_FOUND', `peer ${id} is not in the peer book`)
      const entry: PeerEntry = { ...existing }
      if (cleanName !== undefined) entry.name = cleanName
      if (patch.lastSyncAt !== undefined) entry.lastSyncAt = patch.lastSyncAt
      if (patch.lastError === null) delete entry.lastError
      else if (patch.lastError !== undefined) entry.lastError = patch.lastError
      await this.#trustedDb.put(id, entry)
      this.#trusted.set(id, entry)
      return structuredClone(entry)
    })
  }

  /** Write a trusted entry and settle any pending request from that peer. */
  async #putTrusted (entry: PeerEntry): Promise<void> {
    await this.#trustedDb.put(entry.peerId, entry)
    this.#trusted.set(entry.peerId, entry)
    if (this.#pending.has(entry.peerId)) await this.#dropPending(entry.peerId)
  }

  #expired (entry: PendingPeer, now: number): boolean {
    return now - entry.lastSeenAt >= this.#pendingTtlMs
  }

  /** Forget requests whose peer has not been seen for the TTL. Called inside `#exclusive`. */
  async #dropExpired (now: number): Promise<void> {
    for (const entry of [...this.#pending.values()]) {
      if (this.#expired(entry, now)) await this.#dropPending(entry.peerId)
    }
  }

  /** The pending request seen longest ago (ties: the lowest peer id, so every run picks the same). */
  #seenLongestAgo (): string | undefined {
    let oldest: PendingPeer | undefined
    for (const entry of this.#pending.values()) {
      if (oldest === undefined || entry.lastSeenAt < oldest.lastSeenAt || (entry.lastSeenAt === oldest.lastSeenAt && entry.peerId < oldest.peerId)) oldest = entry
    }
    return oldest?.peerId
  }

  async #dropPending (peerId: string): Promise<void> {
    await this.#pendingDb.del(peerId)
    this.#pending.delete(peerId)
    this.#pendingWrittenAt.delete(peerId)
  }

  /** Run mutations one at a time so read-modify-write never loses an update. */
  async #exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return await run
  }
}
