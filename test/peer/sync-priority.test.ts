// The sync service tells the node's link priority gate when records move
// to a peer (issue 11): busy while the records a peer pulls are offered and
// sent, idle once they are, so file bytes to that peer wait only meanwhile.
// Two real sync services over libp2p.
import t from 'tap'
import { jsonSublevel, openDb } from '../../src/db.ts'
import { AuditLog, type AuditEntry } from '../../src/audit.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { initDataset } from '../../src/crdt/records/dataset.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { LinkPriority } from '../../src/peer/link-priority.ts'
import { ProtocolHost } from '../../src/peer/protocol-host.ts'
import { SyncService } from '../../src/peer/sync/service.ts'
import { ReplicationLog, type ServedEntry } from '../../src/peer/sync/replication-log.ts'
import type { Checkpoint } from '../../src/peer/sync/types.ts'
import { tempDir } from '../helpers/tmp.ts'
import { startTestPeer, trustEachOther, waitFor, type TestPeer } from './helpers.ts'

const actor = { userId: 'u', at: '2026-01-01T00:00:00.000Z' }

/** A gate that also keeps what it was told. */
class RecordingPriority extends LinkPriority {
  readonly calls: Array<[string, boolean]> = []
  override syncBusy (peerId: string, busy: boolean): void {
    this.calls.push([peerId, busy])
    super.syncBusy(peerId, busy)
  }
}

async function syncing (t: Parameters<typeof tempDir>[0], peer: TestPeer, priority: LinkPriority): Promise<DocStore> {
  const db = await openDb(await tempDir(t, 'dw-sync-db-'))
  const store = await DocStore.open(db, { summarise })
  const audit = new AuditLog(jsonSublevel<AuditEntry>(db, 'audit'))
  const sync = new SyncService({
    node: peer.node,
    host: new ProtocolHost({ node: peer.node, book: peer.book, audit }),
    store,
    book: peer.book,
    checkpoints: jsonSublevel<Checkpoint>(db, 'sync-checkpoints'),
    served: new ReplicationLog(jsonSublevel<ServedEntry>(db, 'sync-served')),
    audit,
    priority
  })
  await sync.start()
  // Registered after the peer's own teardowns, so they run first (LIFO): the service, then the db.
  t.teardown(async () => { await db.close() })
  t.teardown(async () => { await sync.stop() })
  return store
}

t.test('records pulled by a peer make the gate busy for that peer, and idle once sent', async t => {
  const a = await startTestPeer(t)
  const b = await startTestPeer(t)
  await trustEachOther(a, b)
  const gateA = new RecordingPriority({ maxWaitMs: 60_000 })
  const storeA = await syncing(t, a, gateA)
  const storeB = await syncing(t, b, new LinkPriority())
  const keys: string[] = []
  for (let i = 0; i < 20; i++) {
    const id = newId()
    keys.push(docKey('dataset', id))
    await storeA.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, { name: `d${i}` }, actor))
  }
  await b.node.dial(a.node.getMultiaddrs()[0] as Parameters<typeof b.node.dial>[0])
  await waitFor(() => storeB.seq >= keys.length, 60_000, 'B has every record')
  await waitFor(() => !gateA.busy(b.peerId), 10_000, 'the gate idle again')
  t.ok(gateA.calls.some(([peer, busy]) => peer === b.peerId && busy), 'busy for B while its records moved')
  t.ok(gateA.calls.some(([peer, busy]) => peer === b.peerId && !busy), 'idle for B once they were sent')
  t.ok(gateA.calls.every(([peer]) => peer === b.peerId), 'only B was reported')
})
