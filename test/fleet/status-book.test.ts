// A status from a peer is hostile input: each way it can be wrong is
// refused with its reason, and nothing of it is kept or relayed.
import t from 'tap'
import { encode } from 'cborg'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { jsonSublevel, openDb, type Db } from '../../src/db.ts'
import { StatusBook, type StoredStatus } from '../../src/fleet/status-book.ts'
import { MAX_STATUS_BYTES, signStatus, type NodeStatus, type StatusBody } from '../../src/fleet/status-record.ts'
import { serveStatuses } from '../../src/fleet/status-gossip.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { tempDir } from '../helpers/tmp.ts'

interface Node { key: PrivateKey, id: string }

async function node (): Promise<Node> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

function body (name = 'north'): StatusBody {
  return {
    name,
    version: '0.1.0',
    startedAt: 1_700_000_000_000,
    peers: [],
    peersTotal: 0,
    records: { dataset: 3 },
    blobBytes: 10,
    disk: { free: 5e9, total: 1e10 },
    belowTarget: 0,
    lastBackup: null,
    quarantined: 0,
    ready: true
  }
}

const T0 = 1_750_000_000_000

async function signed (n: Node, seq: number, b: StatusBody = body()): Promise<[Uint8Array, Uint8Array]> {
  const s = await signStatus(n.key, { node: n.id, seq, body: b })
  return [s.bytes, s.sig]
}

/** A status signed by `signer` over arbitrary content (to reach the checks after the signature). */
async function signedRaw (signer: PrivateKey, content: unknown): Promise<[Uint8Array, Uint8Array]> {
  const bytes = encode(content)
  const sig = await signer.sign(new Uint8Array([...new TextEncoder().encode('dw-status-1\n'), ...bytes]))
  return [bytes, sig]
}

async function setup (t: { teardown: (fn: () => Promise<void> | void) => void }, members: Set<string>): Promise<{ db: Db, self: Node, open: () => Promise<StatusBook> }> {
  const db = await openDb(await tempDir(t, 'dw-fleet-'))
  t.teardown(async () => { await db.close() })
  const self = await node()
  const open = async (): Promise<StatusBook> => await StatusBook.open({ self: self.id, db: jsonSublevel<StoredStatus>(db, 'fleet-status'), isMember: async id => members.has(id) })
  return { db, self, open }
}
async function refused (t: any, book: StatusBook, item: unknown, reason: string, from = 'peer'): Promise<void> {
  await t.rejects(book.receive(item, from), { name: 'StatusRefusal', reason }, `refused as ${reason}`)
}

async function storedKeys (db: Db): Promise<string[]> {
  return await jsonSublevel<StoredStatus>(db, 'fleet-status').keys().all()
}

t.test('a member\'s signed status is kept, persisted, and read back after a restart', async t => {
  const origin = await node()
  const relay = await node()
  const { db, open } = await setup(t, new Set([origin.id, relay.id]))
  const book = await open()
  const held = await book.receive(await signed(origin, T0), relay.id)
  t.equal(held.via, relay.id)
  t.equal(held.status.body.records.dataset, 3)
  t.same(await storedKeys(db), [origin.id])
  const again = await open()
  t.equal(again.get(origin.id)?.status.seq, T0, 'survives a restart')
  t.equal(again.get(origin.id)?.via, relay.id)
})

t.test('a forged signature is refused and nothing is stored', async t => {
  const origin = await node()
  const forger = await node()
  const { db, open } = await setup(t, new Set([origin.id, forger.id]))
  const book = await open()
  // The forger signs a status that names the origin.
  const s = await signStatus(forger.key, { node: origin.id, seq: T0, body: body() })
  await refused(t, book, [s.bytes, s.sig], 'bad-signature', forger.id)
  // A real signature over other bytes.
  const real = await signed(origin, T0)
  const tampered = await signed(origin, T0 + 1, body('south'))
  await refused(t, book, [tampered[0], real[1]], 'bad-signature')
  await refused(t, book, [real[0], new Uint8Array(64)], 'bad-signature')
  await refused(t, book, [real[0], real[1].subarray(0, 63)], 'bad-signature')
  t.equal(book.get(origin.id), undefined)
  t.same(await storedKeys(db), [])
  t.equal(book.refused['bad-signature'], 4)
})

t.test('a status from a node outside the roster (or revoked) is refused', async t => {
  const stranger = await node()
  const { db, open } = await setup(t, new Set())
  const book = await open()
  await refused(t, book, await signed(stranger, T0), 'not-member')
  t.equal(book.get(stranger.id), undefined)
  t.same(await storedKeys(db), [])
})

t.test('oversized and malformed statuses are refused', async t => {
  const origin = await node()
  const { db, open } = await setup(t, new Set([origin.id]))
  const book = await open()
  await refused(t, book, [new Uint8Array(MAX_STATUS_BYTES + 1), new Uint8Array(64)], 'oversized')
  await t.rejects(signStatus(origin.key, { node: origin.id, seq: T0, body: { ...body(), notReady: Array(4).fill('x'.repeat(5000)) } }), /over the 16384-byte limit/, 'never made either')
  for (const item of [
    undefined, 'text', [new Uint8Array(3)], [new Uint8Array([0xff, 0xff]), new Uint8Array(64)],
    await signedRaw(origin.key, [1, 2, 3]),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0 }),
    await signedRaw(origin.key, { v: 1, node: 'not a peer id', seq: T0, body: body() }),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: -5, body: body() }),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0, body: { ...body(), name: '' } }),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0, body: { ...body(), blobBytes: -1 } }),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0, body: { ...body(), peers: Array(65).fill({ peer: origin.id, connected: true, lagRecords: 0, lagSeconds: 0 }) } }),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0, body: { ...body(), peers: [{ peer: origin.id, connected: 'yes', lagRecords: 0, lagSeconds: 0 }] } }),
    await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0, body: { ...body(), records: { dataset: 2 ** 60 } } })
  ]) {
    await refused(t, book, item, 'malformed')
  }
  await refused(t, book, await signedRaw(origin.key, { v: 2, node: origin.id, seq: T0, body: body() }), 'unsupported')
  t.equal(book.get(origin.id), undefined)
  t.same(await storedKeys(db), [])
})

t.test('extra fields from a newer node are ignored, not kept', async t => {
  const origin = await node()
  const { open } = await setup(t, new Set([origin.id]))
  const book = await open()
  const held = await book.receive(await signedRaw(origin.key, { v: 1, node: origin.id, seq: T0, extra: 1, body: { ...body(), future: 'x', records: { dataset: 1, widget: 9 } } }), 'peer')
  t.same(held.status.body.records, { dataset: 1 })
  t.notOk('future' in held.status.body)
})

t.test('a status not newer than the one held is refused', async t => {
  const origin = await node()
  const { db, open } = await setup(t, new Set([origin.id]))
  let now = T0
  const book = await StatusBook.open({ self: 'self', db: jsonSublevel<StoredStatus>(db, 'fleet-status'), isMember: async () => true, now: () => now })
  await book.receive(await signed(origin, T0 + 2000), 'peer')
  now += 10_000
  await refused(t, book, await signed(origin, T0 + 1000), 'stale')
  await refused(t, book, await signed(origin, T0 + 2000), 'stale')
  t.equal(book.get(origin.id)?.status.seq, T0 + 2000)
  t.equal((await open()).get(origin.id)?.status.seq, T0 + 2000, 'the older one was not written either')
  // A newer one arriving hot on the heels of the last is held back too.
  await book.receive(await signed(origin, T0 + 3000), 'peer')
  now += 100
  await refused(t, book, await signed(origin, T0 + 4000), 'too-frequent')
  now += 1000
  await book.receive(await signed(origin, T0 + 5000), 'peer')
  t.equal(book.get(origin.id)?.status.seq, T0 + 5000)
})

t.test('a status about the receiver itself is refused; a newer one raises its next seq', async t => {
  const { db, self, open } = await setup(t, new Set())
  const book = await open()
  const own = await signStatus(self.key, { node: self.id, seq: T0, body: body() })
  await book.putOwn({ node: self.id, seq: T0, body: body() }, own)
  const later = await signed(self, T0 + 60_000, body('impostor'))
  await refused(t, book, later, 'self')
  t.equal(book.get(self.id)?.status.seq, T0, 'its own word is kept')
  t.equal(book.get(self.id)?.status.body.name, 'north')
  t.equal(book.ownFloor, T0 + 60_000, 'its next status goes above the one seen')
  t.same(await storedKeys(db), [self.id])
  // Forged (someone else's key): refused before it can move anything.
  const other = await node()
  const forged = await signStatus(other.key, { node: self.id, seq: T0 + 999_999, body: body() } satisfies NodeStatus)
  await refused(t, book, [forged.bytes, forged.sig], 'bad-signature')
  t.equal(book.ownFloor, T0 + 60_000)
})

t.test('statuses of nodes that left the roster are dropped', async t => {
  const a = await node()
  const b = await node()
  const members = new Set([a.id, b.id])
  const { db, open } = await setup(t, members)
  const book = await open()
  await book.receive(await signed(a, T0), 'peer')
  await book.receive(await signed(b, T0), 'peer')
  members.delete(b.id)
  t.same(await book.prune(), [b.id])
  t.equal(book.get(b.id), undefined, 'no longer held')
  t.ok(book.get(a.id), 'a member stays')
  t.same((await storedKeys(db)).sort(), [a.id])
  members.delete(a.id)
  t.equal((await open()).get(a.id), undefined, 'not read back once it is out of the roster')
})

t.test('a message that is not a list of statuses ends the stream as INVALID_MESSAGE', async t => {
  for (const message of [[], { statuses: 'x' }, { statuses: Array(33).fill(0) }]) {
    const [a, b] = streamPair()
    await a.send(message)
    await t.rejects(serveStatuses(b, async () => {}), { code: 'INVALID_MESSAGE' })
  }
  const [a, b] = streamPair()
  const got: unknown[] = []
  await a.send({ statuses: [1, 2] })
  await a.close()
  await serveStatuses(b, async item => { got.push(item) })
  t.same(got, [1, 2], 'each status goes to the book, which judges it')
})
