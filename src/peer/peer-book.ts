import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { Sublevel } from '../db.ts'
import { DwError } from '../errors.ts'

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
}

const DEFAULT_MAX_PENDING = 256
/** A peer retrying in a loop should not cost a disk write per attempt. */
const PENDING_WRITE_INTERVAL_MS = 10_000
const HOST_PROTOCOLS = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6'])
const EXAMPLE = '/ip4/10.1.2.3/tcp/4001/p2p/12D3KooW...'

/**
 * The peers this node trusts, and the untrusted ones that knocked, persisted
 * in two LevelDB sublevels and mirrored in memory so the connection gater can
 * answer `isTrusted` synchronously on every handshake.
 */
export class PeerBook {
  readonly #trustedDb: Sublevel<PeerEntry>
  readonly #pendingDb: Sublevel<PendingPeer>
  readonly #self: string
  readonly #maxPending: number
  readonly #trusted = new Map<string, PeerEntry>()
  readonly #pending = new Map<string, PendingPeer>()
  readonly #pendingWrittenAt = new Map<string, number>()
  #queue: Promise<unknown> = Promise.resolve()

  private constructor (init: PeerBookInit) {
    this.#trustedDb = init.trusted
    this.#pendingDb = init.pending
    this.#self = init.self
    this.#maxPending = init.maxPending ?? DEFAULT_MAX_PENDING
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
        ? { peerId, addrs: [addr], addedAt: Date.now() }
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

  /** Synchronous, from memory: safe to call on every connection attempt. */
  isTrusted (peerId: string | PeerId): boolean {
    return this.#trusted.has(peerId.toString())
  }

  /** Untrusted peers that tried to connect, most recent first. */
  pending (): PendingPeer[] {
    return [...this.#pending.values()]
      .sort((a, b) => b.lastSeenAt - a.lastSeenAt)
      .map(entry => structuredClone(entry))
  }

  /**
   * Remember that an untrusted peer tried to connect from `addr`. Ignored for
   * trusted peers, and for new peers once `maxPending` requests are waiting
   * (an admin clears them with `dismiss`).
   */
  async recordPending (peerId: string, addr: string): Promise<void> {
    const id = parsePeerId(peerId)
    const fullAddr = withPeerId(addr, id)
    await this.#exclusive(async () => {
      if (this.#trusted.has(id) || id === this.#self) return
      const now = Date.now()
      const existing = this.#pending.get(id)
      if (existing === undefined && this.#pending.size >= this.#maxPending) return
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
      const request = this.#pending.get(id)
      if (request === undefined) throw new DwError('NOT_FOUND', `no pending request from peer ${id}`)
      const addr = given?.addr ?? request.addr
      const existing = this.#trusted.get(id)
      const entry: PeerEntry = existing === undefined
        ? { peerId: id, addrs: [addr], addedAt: Date.now() }
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
      if (!this.#pending.has(id)) throw new DwError('NOT_FOUND', `no pending request from peer ${id}`)
      await this.#pendingDb.del(id)
      this.#pending.delete(id)
      this.#pendingWrittenAt.delete(id)
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
    if (this.#pending.has(entry.peerId)) {
      await this.#pendingDb.del(entry.peerId)
      this.#pending.delete(entry.peerId)
      this.#pendingWrittenAt.delete(entry.peerId)
    }
  }

  /** Run mutations one at a time so read-modify-write never loses an update. */
  async #exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return await run
  }
}

/** Someone the gater turned away. */
export type RefusedConnection = {
  peerId: string
  addr: string
  direction: 'inbound' | 'outbound'
}

/**
 * A libp2p connection gater that admits only the book's trusted peers.
 *
 * The check runs after the Noise handshake (`deny*EncryptedConnection`),
 * the first point where the remote has proved which key it holds; refused
 * peers are recorded as pending so an admin can approve them. Dialling is
 * otherwise unrestricted: private and loopback addresses are where field
 * sites live.
 */
export function createConnectionGater (book: PeerBook, onRefused?: (refused: RefusedConnection) => void): ConnectionGater {
  const check = async (direction: 'inbound' | 'outbound', peerId: PeerId, maConn: MultiaddrConnection): Promise<boolean> => {
    if (book.isTrusted(peerId)) return false
    const id = peerId.toString()
    const addr = withPeerId(maConn.remoteAddr.toString(), id)
    try {
      await book.recordPending(id, addr)
    } catch {
      // Failing to remember a stranger must not let it in, nor break the gater.
    }
    try {
      onRefused?.({ peerId: id, addr, direction })
    } catch {
      // A logging callback must not decide who gets in.
    }
    return true
  }
  return {
    denyDialMultiaddr: () => false,
    denyDialPeer: (peerId) => !book.isTrusted(peerId),
    denyInboundEncryptedConnection: async (peerId, maConn) => await check('inbound', peerId, maConn),
    denyOutboundEncryptedConnection: async (peerId, maConn) => await check('outbound', peerId, maConn)
  }
}

/**
 * Validate what an admin typed as a peer address and return the peer id and
 * canonical multiaddr. Messages say what is wrong and what is expected.
 */
export function parsePeerAddress (input: string, self?: string): { peerId: string, addr: string } {
  if (typeof input !== 'string') throw bad('the peer address must be a string')
  const text = stripQuotes(input.trim())
  if (text === '') throw bad(`the peer address is empty; expected something like ${EXAMPLE}`)
  if (/\s/.test(text)) throw bad(`the peer address "${text}" contains spaces; expected one multiaddr like ${EXAMPLE}`)
  if (!text.startsWith('/')) {
    if (looksLikePeerId(text)) throw bad(`"${text}" is a bare peer id; give the full address, e.g. /ip4/<host>/tcp/<port>/p2p/${text}`)
    throw bad(`"${text}" is not a multiaddr (it must start with "/"); expected something like ${EXAMPLE}`)
  }
  let components
  try {
    components = multiaddr(text.replace(/\/+$/, '')).getComponents()
  } catch (err) {
    throw bad(`"${text}" is not a valid multiaddr: ${(err as Error).message}`, err)
  }
  const last = components.at(-1)
  if (last?.name !== 'p2p' || last.value === undefined) {
    throw bad(`"${text}" does not end in /p2p/<peerId>; add the peer id the remote node printed at init, e.g. ${text}/p2p/12D3KooW...`)
  }
  const peerId = parsePeerId(last.value)
  if (components.length === 1) throw bad(`"${text}" has a peer id but no network address; expected /ip4/<host>/tcp/<port>/p2p/${peerId}`)
  const [host, port] = components
  if (components.length !== 3 || host === undefined || !HOST_PROTOCOLS.has(host.name) || port?.name !== 'tcp') {
    throw bad(`"${text}" is not a TCP address; expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/p2p/<peerId>`)
  }
  if (host.value === '0.0.0.0' || host.value === '::') {
    throw bad(`"${text}" uses the wildcard address ${host.value}, which only means "listen everywhere"; use the remote node's real IP or host name`)
  }
  if (port.value === '0') throw bad(`"${text}" uses port 0; use the port the remote node listens on`)
  if (self !== undefined && peerId === self) throw bad(`${peerId} is this node's own peer id; add the other site's address instead`)
  return { peerId, addr: `/${host.name}/${host.value}/tcp/${port.value}/p2p/${peerId}` }
}

function parsePeerId (value: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw bad('a peer id is required')
  try {
    return peerIdFromString(value.trim()).toString()
  } catch (err) {
    throw bad(`"${value}" is not a valid peer id (expected something like 12D3KooW... as printed by dw init)`, err)
  }
}

function parseName (name: string): string {
  const clean = typeof name === 'string' ? name.trim() : ''
  // eslint-disable-next-line no-control-regex
  if (clean === '' || clean.length > 64 || /[\u0000-\u001f\u007f]/.test(clean)) {
    throw bad('a peer name must be 1 to 64 printable characters')
  }
  return clean
}

function withPeerId (addr: string, peerId: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
}

function looksLikePeerId (text: string): boolean {
  try {
    peerIdFromString(text)
    return true
  } catch {
    return false
  }
}

function stripQuotes (text: string): string {
  const match = /^(["'`\u201c\u2018])(.*)(["'`\u201d\u2019])$/s.exec(text)
  return match?.[2]?.trim() ?? text
}

function bad (message: string, cause?: unknown): DwError {
  return new DwError('INVALID_INPUT', message, { cause })
}
