import type { Sublevel } from '../../db.ts'

/** One puller's acknowledgements as this node recorded them: the latest position per recent session. */
export interface ServedEntry { epoch: string, sessions: Array<[session: string, through: number]> }

/**
 * Sessions remembered per puller. A puller may hold a checkpoint from any
 * of its recent sessions (a `dw sync` runs beside the live session, and
 * either may save last); older ones only cost a full comparison.
 */
const SESSIONS_KEPT = 8

/**
 * This node's side of each puller's replication log (CouchDB keeps one on
 * both ends for the same reason): what each puller acknowledged, in which
 * session. A puller's checkpoint is trusted only when this log vouches for
 * it, so a node restored from a backup, or rolled back with its disk, whose
 * log is as old as its feed, never lets a peer skip the sequence numbers it
 * reuses. Kept in memory and written through, so two sessions of one
 * puller never lose each other's updates.
 */
export class ReplicationLog {
  readonly #db: Sublevel<ServedEntry>
  readonly #entries = new Map<string, ServedEntry | undefined>()

  constructor (db: Sublevel<ServedEntry>) {
    this.#db = db
  }

  async #entry (peer: string): Promise<ServedEntry | undefined> {
    if (!this.#entries.has(peer)) {
      const stored = await this.#db.get(peer)
      // Another session may have recorded meanwhile: what is in memory wins.
      if (!this.#entries.has(peer)) this.#entries.set(peer, stored)
    }
    return this.#entries.get(peer)
  }

  /** How far `peer` acknowledged feed `epoch` in `session`, as this log holds it; undefined for a session it does not know. */
  async acknowledged (peer: string, epoch: string, session: string | undefined): Promise<number | undefined> {
    const entry = await this.#entry(peer)
    if (entry === undefined || entry.epoch !== epoch || session === undefined) return undefined
    return entry.sessions.find(([s]) => s === session)?.[1]
  }

  /** True when `peer` acknowledged at least `since` of feed `epoch` in `session`. */
  async vouches (peer: string, epoch: string, session: string | undefined, since: number): Promise<boolean> {
    const through = await this.acknowledged(peer, epoch, session)
    return through !== undefined && through >= since
  }

  async record (peer: string, epoch: string, session: string, through: number): Promise<void> {
    const entry = await this.#entry(peer)
    const sessions = entry?.epoch === epoch ? entry.sessions.filter(([s]) => s !== session) : []
    sessions.push([session, through])
    const updated: ServedEntry = { epoch, sessions: sessions.slice(-SESSIONS_KEPT) }
    this.#entries.set(peer, updated)
    await this.#db.put(peer, updated)
  }
}
