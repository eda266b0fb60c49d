import type { PrivateKey } from '@libp2p/interface'
import { jsonSublevel, openDb } from '../../src/db.ts'
import { loadOrCreateIdentity, peerIdOf } from '../../src/peer/identity.ts'
import { createPeerNode } from '../../src/peer/libp2p.ts'
import type { PeerNode } from '../../src/peer/libp2p.ts'
import { PeerBook } from '../../src/peer/peer-book.ts'
import { createConnectionGater } from '../../src/peer/connection-gater.ts'
import type { PeerEntry, PendingPeer } from '../../src/peer/peer-book.ts'
import type { RefusedConnection } from '../../src/peer/connection-gater.ts'
import { tempDir } from '../helpers/tmp.ts'

type Teardown = { teardown: (fn: () => Promise<void> | void) => void }

export interface TestPeer {
  node: PeerNode
  book: PeerBook
  key: PrivateKey
  peerId: string
  /** Dialable `/ip4/127.0.0.1/tcp/<port>/p2p/<id>`. */
  addr: string
  refused: RefusedConnection[]
}

/** Open a peer book on a fresh LevelDB in a temp dir. */
export async function openTestBook (t: Teardown, self: string, maxPending?: number): Promise<PeerBook> {
  const db = await openDb(await tempDir(t, 'dw-peer-db-'))
  t.teardown(async () => { await db.close() })
  return await PeerBook.open({
    trusted: jsonSublevel<PeerEntry>(db, 'peers'),
    pending: jsonSublevel<PendingPeer>(db, 'peers-pending'),
    self,
    maxPending
  })
}

/** A started libp2p node on 127.0.0.1 with its own identity and peer book. */
export async function startTestPeer (t: Teardown): Promise<TestPeer> {
  const key = await loadOrCreateIdentity(await tempDir(t, 'dw-peer-id-'))
  const peerId = peerIdOf(key)
  const book = await openTestBook(t, peerId)
  const refused: RefusedConnection[] = []
  const node = await createPeerNode({
    privateKey: key,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    gater: createConnectionGater(book, r => { refused.push(r) })
  })
  // Registered after the db teardown, so it runs first (tap runs teardowns LIFO).
  t.teardown(async () => { await node.stop() })
  const addr = node.getMultiaddrs().map(a => a.toString()).find(a => a.startsWith('/ip4/127.0.0.1/tcp/'))
  if (addr === undefined) throw new Error('node has no loopback TCP address')
  return { node, book, key, peerId, addr, refused }
}

/** Make `a` and `b` trust each other. */
export async function trustEachOther (a: TestPeer, b: TestPeer): Promise<void> {
  await a.book.add(b.addr, 'b')
  await b.book.add(a.addr, 'a')
}

/** Reject if `promise` takes longer than `ms`. */
export async function within<T> (ms: number, promise: Promise<T>, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not finish within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Poll `condition` every 20 ms until it holds; reject after `ms`. */
export async function waitFor (condition: () => boolean, ms: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
