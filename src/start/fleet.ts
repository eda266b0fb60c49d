import { readFileSync } from 'node:fs'
import { statfs } from 'node:fs/promises'
import type { PrivateKey } from '@libp2p/interface'
import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { jsonSublevel } from '../db.ts'
import type { Backups } from '../backup/backups.ts'
import { StatusBook, type StoredStatus } from '../fleet/status-book.ts'
import { StatusCollector } from '../fleet/status-collector.ts'
import { StatusGossip } from '../fleet/status-gossip.ts'
import { HOSTILE_REASONS, type RefusalReason } from '../fleet/status-record.ts'
import { fleetRows, type FleetRow } from '../fleet/fleet-view.ts'
import { resolveFleetConfig, type FleetSettings } from '../fleet/thresholds.ts'
import type { Core } from './core.ts'
import type { FileTransfer } from './file-transfer.ts'
import type { Guard } from './guard.ts'
import type { Peering } from './peering.ts'
import type { Unwind } from './unwind.ts'

/** What `GET /fleet` answers. */
export interface FleetView {
  self: string
  generatedAt: string
  rows: FleetRow[]
  settings: FleetSettings
  /** Statuses from peers refused since this node started, by reason. */
  refused: Record<RefusalReason, number>
}

export interface Fleet {
  book: StatusBook
  gossip: StatusGossip
  settings: FleetSettings
  view: () => Promise<FleetView>
}

function packageVersion (): string {
  try {
    return String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown')
  } catch {
    return 'unknown'
  }
}

export interface FleetParts { identity: { key: PrivateKey, peerId: string }, peering: Peering, transfer: FileTransfer, backups: Backups, guard: Guard, audit: AuditLog }

/**
 * Node status through the mesh and the fleet view over it: this node's
 * status made from its parts, signed and pushed to its peers, theirs kept
 * and relayed (`/dw/status/1.0.0`), and every roster member judged by the
 * thresholds in config.json `fleet`.
 */
export async function startFleet (core: Core, dataDir: string, config: NodeConfig, parts: FleetParts, unwind: Unwind): Promise<Fleet> {
  const settings = resolveFleetConfig(config.fleet)
  const { identity, peering, transfer, backups, guard, audit } = parts
  const self = identity.peerId
  const isMember = async (peerId: string): Promise<boolean> => ['full', 'contributor', 'read-only'].includes(await core.nodes.standing(peerId))
  const book = await StatusBook.open({ self, db: jsonSublevel<StoredStatus>(core.db, 'fleet-status'), isMember })
  const startedAt = Date.now()
  const collector = new StatusCollector({
    name: config.name,
    version: packageVersion(),
    startedAt,
    peers: () => peering.sync.status(),
    rosterNames: async () => new Map((await core.nodes.list()).map(e => [e.peerId, e.name])),
    countRecords: async kind => {
      let n = 0
      for await (const [, meta] of core.docs.scan(`${kind}/`)) if (!meta.summary.deleted) n++
      return n
    },
    feedSeq: () => core.docs.seq,
    blobBytes: () => { let n = 0; for (const size of transfer.holdings.own().values()) n += size; return n },
    disk: async () => {
      const fs = await statfs(dataDir).catch(() => undefined)
      return fs === undefined ? null : { free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize }
    },
    belowTarget: () => {
      const copies = transfer.copier.status()
      return copies.checkedAt === undefined ? null : copies.belowTarget
    },
    lastBackup: async () => {
      const last = await backups.last()
      return last === undefined ? null : { at: Date.parse(last.at), ok: last.ok }
    },
    quarantined: async () => await guard.quarantine.count(),
    readiness: async () => await guard.readiness.check()
  })

  // Refusals only a misbehaving peer causes are audited, once per peer and reason a minute.
  const auditedAt = new Map<string, number>()
  const gossip = new StatusGossip({
    self,
    key: identity.key,
    host: peering.host,
    events: peering.libp2p,
    book,
    collect: async () => await collector.collect(),
    everyMs: settings.publishEveryMs,
    onRefused: (peer, refusal) => {
      if (!HOSTILE_REASONS.has(refusal.reason)) return
      const key = `${peer} ${refusal.reason}`
      if ((auditedAt.get(key) ?? 0) > Date.now() - 60_000) return
      if (auditedAt.size > 10_000) auditedAt.clear()
      auditedAt.set(key, Date.now())
      void audit.append({ type: 'fleet.refused', peer, outcome: 'error', details: { reason: refusal.reason, message: refusal.message, ...(refusal.node === undefined ? {} : { node: refusal.node }) } }).catch(() => {})
    },
    onError: warnOncePerMinute('node status')
  })
  await gossip.start()
  unwind.push(async () => { await gossip.stop() })

  // A node that leaves the roster (removed, revoked) leaves the fleet view and is no longer relayed.
  let pruning: Promise<unknown> = Promise.resolve()
  const onRosterChange = (event: { key: string }): void => {
    if (event.key !== core.trust.rosterKey) return
    pruning = pruning.then(async () => await book.prune()).catch(() => {})
  }
  core.docs.on('change', onRosterChange)
  unwind.push(async () => { core.docs.off('change', onRosterChange); await pruning })

  const view = async (): Promise<FleetView> => {
    const now = Date.now()
    const [roster, own] = await Promise.all([core.nodes.list(), collector.collect(now)])
    const rows = fleetRows({
      self,
      members: roster.filter(e => e.role !== 'revoked').map(e => ({ peerId: e.peerId, name: e.name, role: e.role })),
      own,
      held: book.list().map(h => ({ node: h.status.node, seq: h.status.seq, body: h.status.body, via: h.via, receivedAt: h.receivedAt })),
      settings,
      now
    })
    return { self, generatedAt: new Date(now).toISOString(), rows, settings, refused: { ...book.refused } }
  }
  return { book, gossip, settings, view }
}

function warnOncePerMinute (what: string): (err: unknown) => void {
  let warnedAt = 0
  return err => {
    if (Date.now() - warnedAt < 60_000) return
    warnedAt = Date.now()
    process.stderr.write(`dw: ${what}: ${(err as Error)?.message ?? String(err)}\n`)
  }
}
