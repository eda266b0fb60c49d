import type { PrivateKey } from '@libp2p/interface'
import { jsonSublevel } from '../db.ts'
import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { createPeerNode, type PeerNode } from '../peer/libp2p.ts'
import { PeerBook, type PeerEntry, type PendingPeer } from '../peer/peer-book.ts'
import { createConnectionGater } from '../peer/connection-gater.ts'
import { SyncService } from '../peer/sync/service.ts'
import { QuotaLedger, resolveSyncQuotas } from '../peer/sync/quota.ts'
import { DwError } from '../errors.ts'
import { ProtocolHost } from '../peer/protocol-host.ts'
import { LinkRates } from '../peer/link-rates.ts'
import { LinkPriority } from '../peer/link-priority.ts'
import type { Checkpoint } from '../peer/sync/types.ts'
import { ReplicationLog, type ServedEntry } from '../peer/sync/replication-log.ts'
import type { Core } from './core.ts'
import type { Refusal } from '../crdt/doc-store.ts'
import { auditRefusals } from '../trust/refusals.ts'
import type { Unwind } from './unwind.ts'

export interface Peering {
  book: PeerBook
  libp2p: PeerNode
  sync: SyncService
  host: ProtocolHost
  /** Per-peer byte budgets from the link profiles in the peer book. */
  rates: LinkRates
  /** Records before files on each peer's connection: sync reports, the blob server yields. */
  priority: LinkPriority
}

/**
 * The peer book, libp2p (admitting only peers in the book) and record sync,
 * with refused changes audited.
 */
export async function startPeering (core: Core, identity: { key: PrivateKey, peerId: string }, config: NodeConfig, audit: AuditLog, unwind: Unwind): Promise<Peering> {
  const { key, peerId } = identity
  let quotas: QuotaLedger
  try {
    quotas = new QuotaLedger(resolveSyncQuotas(config.limits?.sync))
  } catch (err) {
    throw new DwError('CONFIG_INVALID', `config.json: ${(err as Error).message}`)
  }
  const book = await PeerBook.open({
    trusted: jsonSublevel<PeerEntry>(core.db, 'peers'),
    pending: jsonSublevel<PendingPeer>(core.db, 'peers-pending'),
    self: peerId
  })
  const refusedAt = new Map<string, number>()
  const libp2p = await createPeerNode({
    privateKey: key,
    listen: config.listen,
    ...(config.announce === undefined ? {} : { announce: config.announce }),
    gater: createConnectionGater(book, (refused) => {
      // One audit entry per peer per minute: a peer retrying in a loop must not flood the log.
      const id = refused.peerId.toString()
      if ((refusedAt.get(id) ?? 0) > Date.now() - 60_000) return
      refusedAt.set(id, Date.now())
      void audit.append({ type: 'peer.refused', peer: id, outcome: 'error' }).catch(() => {})
    })
  })
  unwind.push(async () => { await libp2p.stop() })
  // A peer's rate cap holds for everything sent to it, sync frames and file bytes alike.
  const rates = new LinkRates(peer => book.link(peer)?.maxRate)
  const host = new ProtocolHost({ node: libp2p, book, audit, pacer: peer => rates.pacer(peer, 'send') })
  // One per node: sync sessions say when records move to a peer, and the
  // blob server holds file bytes to that peer back meanwhile.
  const priority = new LinkPriority()
  const sync = new SyncService({
    node: libp2p,
    host,
    store: core.docs,
    book,
    checkpoints: jsonSublevel<Checkpoint>(core.db, 'sync-checkpoints'),
    served: new ReplicationLog(jsonSublevel<ServedEntry>(core.db, 'sync-served')),
    audit,
    redial: config.sync,
    quotas,
    priority
  })
  await sync.start()
  unwind.push(async () => { await sync.stop() })

  // A node revoked anywhere in the mesh is cut off here as soon as the
  // roster saying so arrives: out of the peer book, connections closed.
  const cutOffRevoked = async (): Promise<void> => {
    for (const entry of await core.nodes.list()) {
      if (entry.role !== 'revoked' || book.get(entry.peerId) === undefined) continue
      await book.remove(entry.peerId)
      await sync.peerRemoved(entry.peerId)
      await audit.append({ type: 'node.revoke', peer: entry.peerId, outcome: 'ok', details: { message: 'revoked in the mesh roster: removed from the peer book, connections closed' } })
    }
  }
  let cutting: Promise<void> = Promise.resolve()
  const onRosterChange = (event: { key: string }): void => {
    if (event.key !== core.trust.rosterKey) return
    cutting = cutting.then(cutOffRevoked).catch(() => {})
  }
  core.docs.on('change', onRosterChange)
  unwind.push(async () => { core.docs.off('change', onRosterChange); await cutting })
  await cutOffRevoked()

  // Parked changes refused when judged again have no session to audit them.
  const onRefused = (refused: Refusal[]): void => { void auditRefusals(audit, undefined, refused).catch(() => {}) }
  core.docs.on('refused', onRefused)
  unwind.push(async () => { core.docs.off('refused', onRefused) })
  return { book, libp2p, sync, host, rates, priority }
}
