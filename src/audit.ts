import { EventEmitter } from 'node:events'
import { v7 as uuidv7 } from 'uuid'
import type { Sublevel } from './db.ts'

export type AuditType =
  | 'sync.session' | 'sync.violation' | 'sync.refused' | 'sync.quarantined' | 'sync.throttled' | 'sync.rewind'
  | 'quarantine.drop'
  | 'node.role' | 'node.revoke' | 'node.new-epoch' | 'node.backup'
  | 'peer.add' | 'peer.remove' | 'peer.approve' | 'peer.dismiss' | 'peer.refused' | 'peer.link'
  | 'user.create' | 'user.update' | 'user.delete' | 'user.restore'
  | 'blob.mismatch' | 'blob.gc' | 'pin.add' | 'pin.remove' | 'mesh.copies'
  | 'fleet.refused'

export interface AuditEntry {
  id: string
  at: string
  type: AuditType
  /** The user who acted (admin actions) or the peer involved (sync). */
  actor?: string
  peer?: string
  outcome?: 'ok' | 'error'
  details?: Record<string, unknown>
}

/**
 * An append-only log of sync sessions and admin actions, kept in LevelDB.
 * Keys are UUIDv7, so iteration order is time order. Every stored entry
 * is also emitted as `appended`, so counters (src/metrics/) follow the one
 * place where events are recorded instead of each place that records one.
 */
export class AuditLog extends EventEmitter<{ appended: [AuditEntry] }> {
  readonly #db: Sublevel<AuditEntry>

  constructor (db: Sublevel<AuditEntry>) {
    super()
    this.#db = db
  }

  async append (entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const full: AuditEntry = { id: uuidv7(), at: new Date().toISOString(), ...entry }
    await this.#db.put(full.id, full)
    this.emit('appended', full)
    return full
  }

  /** Newest first; `before` is an entry id to continue after. */
  async list (options: { limit: number, before?: string, type?: string, peer?: string }): Promise<AuditEntry[]> {
    const out: AuditEntry[] = []
    const range = options.before !== undefined ? { lt: options.before, reverse: true } : { reverse: true }
    for await (const entry of this.#db.values(range)) {
      if (options.type !== undefined && !entry.type.startsWith(options.type)) continue
      if (options.peer !== undefined && entry.peer !== options.peer) continue
      out.push(entry)
      if (out.length >= options.limit) break
    }
    return out
  }
}
