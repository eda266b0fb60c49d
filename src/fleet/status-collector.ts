import { MAX_STATUS_PEERS, type PeerLag, type StatusBody } from './status-record.ts'
import { RecordKinds, type RecordKind } from '../crdt/keys.ts'

/** One peer's sync state, as the sync service reports it (`PeerSyncStatus`). */
export interface PeerSync {
  peerId: string
  name?: string
  connected: boolean
  lastSyncAt?: string
  behindPeer: number | null
}

/** Where a node's status comes from: each a narrow read of a part of the node. */
export interface StatusSources {
  name: string
  version: string
  startedAt: number
  peers: () => PeerSync[]
  /** Names the roster gives nodes (for peers the peer book has no name for). */
  rosterNames: () => Promise<Map<string, string>>
  /** Live records of a kind: an async scan of the store. */
  countRecords: (kind: RecordKind) => Promise<number>
  /** Current feed head: counts are taken again only after it moved. */
  feedSeq: () => number
  blobBytes: () => number
  disk: () => Promise<{ free: number, total: number } | null>
  belowTarget: () => number | null
  lastBackup: () => Promise<{ at: number, ok: boolean } | null>
  quarantined: () => Promise<number>
  readiness: () => Promise<{ ready: boolean, checks: Record<string, string> }>
}

/** Counting every record reads every meta: once per this long at most, and only after a change. */
export const COUNT_EVERY_MS = 5 * 60_000

/**
 * Lag of one link, as a status carries it: records from the sync status
 * (`behindPeer`), seconds defined in PeerLag.lagSeconds.
 */
export function peerLag (p: PeerSync, name: string | undefined, now: number): PeerLag {
  const last = p.lastSyncAt === undefined ? undefined : Date.parse(p.lastSyncAt)
  const caughtUp = p.connected && p.behindPeer === 0
  const lag: PeerLag = {
    peer: p.peerId,
    connected: p.connected,
    lagRecords: p.behindPeer,
    lagSeconds: caughtUp ? 0 : last === undefined || Number.isNaN(last) ? null : Math.max(0, Math.floor((now - last) / 1000))
  }
  if (name !== undefined && name !== '') lag.name = name.slice(0, 100)
  if (last !== undefined && !Number.isNaN(last)) lag.lastSyncAt = last
  return lag
}

/** Builds this node's status body from its parts; record counts are cached (see COUNT_EVERY_MS). */
export class StatusCollector {
  readonly #s: StatusSources
  readonly #countEveryMs: number
  #counts: { at: number, seq: number, records: Partial<Record<RecordKind, number>> } | undefined
  #counting: Promise<Partial<Record<RecordKind, number>>> | undefined

  constructor (sources: StatusSources, options: { countEveryMs?: number } = {}) {
    this.#s = sources
    this.#countEveryMs = options.countEveryMs ?? COUNT_EVERY_MS
  }

  async collect (now = Date.now()): Promise<StatusBody> {
    const s = this.#s
    const [names, records, disk, lastBackup, quarantined, readiness] = await Promise.all([
      s.rosterNames(), this.#records(now), s.disk(), s.lastBackup(), s.quarantined(), s.readiness()
    ])
    const all = s.peers()
    // Connected peers first: if the list must be cut, the links in use are kept.
    const shown = [...all].sort((a, b) => Number(b.connected) - Number(a.connected)).slice(0, MAX_STATUS_PEERS)
    const body: StatusBody = {
      name: s.name.slice(0, 100),
      version: s.version.slice(0, 40),
      startedAt: s.startedAt,
      peers: shown.map(p => peerLag(p, p.name ?? names.get(p.peerId), now)),
      peersTotal: all.length,
      records,
      blobBytes: s.blobBytes(),
      disk,
      belowTarget: s.belowTarget(),
      lastBackup,
      quarantined,
      ready: readiness.ready
    }
    if (!readiness.ready) body.notReady = Object.values(readiness.checks).filter(c => c !== 'ok').slice(0, 4).map(c => c.slice(0, 200))
    return body
  }

  async #records (now: number): Promise<Partial<Record<RecordKind, number>>> {
    const seq = this.#s.feedSeq()
    const c = this.#counts
    if (c !== undefined && (c.seq === seq || now - c.at < this.#countEveryMs)) return c.records
    this.#counting ??= (async () => {
      try {
        const records: Partial<Record<RecordKind, number>> = {}
        for (const kind of RecordKinds) records[kind] = await this.#s.countRecords(kind)
        this.#counts = { at: now, seq, records }
        return records
      } finally {
        this.#counting = undefined
      }
    })()
    return await this.#counting
  }
}
