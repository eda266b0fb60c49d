import type { Sublevel } from '../db.ts'
import { openStatus, StatusRefusal, type NodeStatus, type RefusalReason, type SignedStatus } from './status-record.ts'

/** One status as this node holds it. */
export interface HeldStatus {
  status: NodeStatus
  signed: SignedStatus
  /** The peer it came from; null for this node's own. */
  via: string | null
  /** When it reached this node (ms, this node's clock). */
  receivedAt: number
}

/** How a held status is kept in LevelDB (the signed bytes, so it is checked again as it is read back). */
export interface StoredStatus { b: string, g: string, via: string | null, receivedAt: number }

/**
 * A relayed status for the same origin sooner than this after the last one
 * was taken is refused: an honest node makes at most one a second, and a
 * member that signs statuses in a loop must not make every node of the
 * mesh write and relay each one.
 */
export const MIN_ACCEPT_INTERVAL_MS = 500

export interface StatusBookInit {
  self: string
  /** The held statuses, one per origin, keyed by peer id. */
  db: Sublevel<StoredStatus>
  /** Whether a node is a member of the mesh (in this node's roster, not revoked). */
  isMember: (peerId: string) => Promise<boolean>
  now?: () => number
}

/**
 * The latest status of every member node this node has heard of, its own
 * included: what it relays, and what the fleet view reads. Every status
 * from a peer passes `receive`, which refuses (and stores nothing for) a
 * status that is oversized, malformed, badly signed, about a node outside
 * the roster, about this node, or not newer than the one held.
 */
export class StatusBook {
  readonly #init: StatusBookInit
  readonly #held = new Map<string, HeldStatus>()
  readonly #now: () => number
  /** The highest seq of a status about this node seen anywhere: its next one must be above it. */
  #ownFloor = 0
  #writes: Promise<void> = Promise.resolve()
  /** Refusals since start, by reason (GET /fleet shows them). */
  readonly refused: Record<RefusalReason, number> = { oversized: 0, malformed: 0, 'bad-signature': 0, unsupported: 0, 'not-member': 0, self: 0, stale: 0, 'too-frequent': 0 }

  private constructor (init: StatusBookInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
  }

  /** Opens the book, reading back what was held before a restart (what no longer checks out is dropped). */
  static async open (init: StatusBookInit): Promise<StatusBook> {
    const book = new StatusBook(init)
    const drop: string[] = []
    for await (const [key, stored] of init.db.iterator()) {
      try {
        const { status, signed } = await openStatus([Buffer.from(stored.b, 'base64'), Buffer.from(stored.g, 'base64')])
        if (status.node !== key) throw new Error('stored under another key')
        const own = status.node === init.self
        if (!own && !await init.isMember(status.node)) throw new Error('no longer a member')
        book.#held.set(key, { status, signed, via: own ? null : stored.via, receivedAt: stored.receivedAt })
        if (own) book.#ownFloor = status.seq
      } catch {
        drop.push(key)
      }
    }
    if (drop.length > 0) await init.db.batch(drop.map(key => ({ type: 'del' as const, key })))
    return book
  }

  get (node: string): HeldStatus | undefined {
    return this.#held.get(node)
  }

  list (): HeldStatus[] {
    return [...this.#held.values()]
  }

  /** The seq this node's next own status must exceed (its last, or a later one of its own seen from a peer). */
  get ownFloor (): number {
    return this.#ownFloor
  }

  /** Keeps this node's own freshly signed status (the caller made its seq above `ownFloor`). */
  async putOwn (status: NodeStatus, signed: SignedStatus): Promise<HeldStatus> {
    if (status.node !== this.#init.self || status.seq <= this.#ownFloor) throw new Error('an own status must be about this node and newer than the last')
    this.#ownFloor = status.seq
    return await this.#keep({ status, signed, via: null, receivedAt: this.#now() })
  }

  /**
   * A status from a peer: kept if it is newer than the one held. Throws
   * StatusRefusal (nothing stored) otherwise; the caller counts and audits.
   */
  async receive (item: unknown, from: string): Promise<HeldStatus> {
    try {
      return await this.#receive(item, from)
    } catch (err) {
      if (err instanceof StatusRefusal) this.refused[err.reason] += 1
      throw err
    }
  }

  async #receive (item: unknown, from: string): Promise<HeldStatus> {
    const { status, signed } = await openStatus(item)
    const node = status.node
    if (node === this.#init.self) {
      // Our own status coming back round the mesh is normal. One newer than
      // any we remember means this data directory forgot some (a restore, a
      // copy, a clock set back): the next one we make goes above it.
      if (status.seq > this.#ownFloor) this.#ownFloor = status.seq
      throw new StatusRefusal('self', 'a node keeps only its own word about itself', node)
    }
    const held = this.#held.get(node)
    if (held !== undefined && status.seq <= held.status.seq) {
      throw new StatusRefusal('stale', `status ${status.seq} of ${node} is not newer than the one held (${held.status.seq})`, node)
    }
    if (!await this.#init.isMember(node)) throw new StatusRefusal('not-member', `${node} is not a member of the mesh here`, node)
    // Again after the awaits: another copy of this origin's status may have been taken meanwhile.
    const current = this.#held.get(node)
    if (current !== undefined && status.seq <= current.status.seq) {
      throw new StatusRefusal('stale', `status ${status.seq} of ${node} is not newer than the one held (${current.status.seq})`, node)
    }
    const now = this.#now()
    if (current !== undefined && current.via !== null && now - current.receivedAt < MIN_ACCEPT_INTERVAL_MS) {
      throw new StatusRefusal('too-frequent', `a status of ${node} was taken less than ${MIN_ACCEPT_INTERVAL_MS} ms ago`, node)
    }
    return await this.#keep({ status, signed, via: from, receivedAt: now })
  }

  /** Drops the statuses of nodes that are no longer members (a node removed or revoked from the roster). */
  async prune (): Promise<string[]> {
    const gone: string[] = []
    for (const node of this.#held.keys()) {
      if (node !== this.#init.self && !await this.#init.isMember(node)) gone.push(node)
    }
    for (const node of gone) this.#held.delete(node)
    if (gone.length > 0) {
      const write = this.#writes.then(async () => { await this.#init.db.batch(gone.map(key => ({ type: 'del' as const, key }))) })
      this.#writes = write.catch(() => {})
      await write
    }
    return gone
  }

  /** Held at once (so the next receive compares against it); written in the order taken, so the disk never ends on an older one. */
  async #keep (held: HeldStatus): Promise<HeldStatus> {
    this.#held.set(held.status.node, held)
    const stored: StoredStatus = {
      b: Buffer.from(held.signed.bytes).toString('base64'),
      g: Buffer.from(held.signed.sig).toString('base64'),
      via: held.via,
      receivedAt: held.receivedAt
    }
    const write = this.#writes.then(async () => { await this.#init.db.put(held.status.node, stored) })
    this.#writes = write.catch(() => {})
    await write
    return held
  }
}
