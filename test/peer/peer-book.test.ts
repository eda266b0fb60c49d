import { generateKeyPair } from '@libp2p/crypto/keys'
import t from 'tap'
import { jsonSublevel, openDb } from '../../src/db.ts'
import { peerIdOf } from '../../src/peer/identity.ts'
import { PeerBook, PENDING_TTL_MS } from '../../src/peer/peer-book.ts'
import { parsePeerAddress } from '../../src/peer/peer-address.ts'
import type { PeerEntry, PendingPeer } from '../../src/peer/peer-book.ts'
import { tempDir } from '../helpers/tmp.ts'
import { openTestBook } from './helpers.ts'

async function newPeerId (): Promise<string> {
  return peerIdOf(await generateKeyPair('Ed25519'))
}

void t.test('parsePeerAddress accepts what an admin means and says what is wrong otherwise', async (t) => {
  const id = await newPeerId()
  const self = await newPeerId()

  const ok: Array<[string, string]> = [
    [`/ip4/10.1.2.3/tcp/4001/p2p/${id}`, `/ip4/10.1.2.3/tcp/4001/p2p/${id}`],
    [`  /ip4/10.1.2.3/tcp/4001/p2p/${id}\n`, `/ip4/10.1.2.3/tcp/4001/p2p/${id}`],
    [`"/ip4/10.1.2.3/tcp/4001/p2p/${id}"`, `/ip4/10.1.2.3/tcp/4001/p2p/${id}`],
    [`/ip4/10.1.2.3/tcp/4001/p2p/${id}/`, `/ip4/10.1.2.3/tcp/4001/p2p/${id}`],
    [`/ip4/10.1.2.3/tcp/4001/ipfs/${id}`, `/ip4/10.1.2.3/tcp/4001/p2p/${id}`],
    [`/dns4/station-7.example.org/tcp/4001/p2p/${id}`, `/dns4/station-7.example.org/tcp/4001/p2p/${id}`],
    [`/ip6/fd00::1/tcp/4001/p2p/${id}`, `/ip6/fd00::1/tcp/4001/p2p/${id}`],
    [`/ip4/127.0.0.1/tcp/4001/p2p/${id}`, `/ip4/127.0.0.1/tcp/4001/p2p/${id}`]
  ]
  for (const [input, addr] of ok) {
    t.same(parsePeerAddress(input, self), { peerId: id, addr }, `accepts ${JSON.stringify(input)}`)
  }

  const wrong: Array<[string, RegExp]> = [
    ['', /empty/],
    ['   ', /empty/],
    [`/ip4/10.1.2.3 /tcp/4001/p2p/${id}`, /spaces/],
    [`/ip4/10.1.2.3/tcp/4001 /p2p/${id}`, /spaces/],
    [id, /bare peer id/],
    [`ip4/10.1.2.3/tcp/4001/p2p/${id}`, /must start with "\/"/],
    ['/ip4/10.1.2.3/tcp/4001', /does not end in \/p2p\//],
    [`/p2p/${id}`, /no network address/],
    [`/ip4/10.1.2.3/tcp/4001/p2p/${id.slice(0, -3)}`, /not a valid peer id/],
    ['/ip4/10.1.2.3/tcp/4001/p2p/12D3KooWxyz', /not a valid peer id/],
    [`/ip4/300.1.2.3/tcp/4001/p2p/${id}`, /not a valid multiaddr/],
    [`/ip4/10.1.2.3/tcp/99999/p2p/${id}`, /not a valid multiaddr/],
    [`/ip4/10.1.2.3/udp/4001/quic-v1/p2p/${id}`, /not a TCP address/],
    [`/ip4/0.0.0.0/tcp/4001/p2p/${id}`, /wildcard/],
    [`/ip4/10.1.2.3/tcp/0/p2p/${id}`, /port 0/],
    [`/ip4/10.1.2.3/tcp/4001/p2p/${self}`, /own peer id/],
    ['http://10.1.2.3:4001', /not a multiaddr/]
  ]
  for (const [input, message] of wrong) {
    t.throws(() => parsePeerAddress(input, self), { code: 'INVALID_INPUT', message }, `rejects ${JSON.stringify(input)}`)
  }
})

void t.test('add, merge, get, list, update, remove', async (t) => {
  const self = await newPeerId()
  const book = await openTestBook(t, self)
  const id = await newPeerId()

  t.notOk(book.isTrusted(id))
  const added = await book.add(`/ip4/10.1.2.3/tcp/4001/p2p/${id}`, ' Ship A ')
  t.match(added, { peerId: id, name: 'Ship A', addrs: [`/ip4/10.1.2.3/tcp/4001/p2p/${id}`] })
  t.type(added.addedAt, 'number')
  t.ok(book.isTrusted(id))

  const merged = await book.add(`/dns4/ship-a.example/tcp/4001/p2p/${id}`)
  t.same(merged.addrs, [`/ip4/10.1.2.3/tcp/4001/p2p/${id}`, `/dns4/ship-a.example/tcp/4001/p2p/${id}`], 'second address merged')
  t.equal(merged.name, 'Ship A', 'name kept when not given')
  t.equal(merged.addedAt, added.addedAt)
  const again = await book.add(`/ip4/10.1.2.3/tcp/4001/p2p/${id}`, 'Ship A (north)')
  t.equal(again.addrs.length, 2, 'a known address is not duplicated')
  t.equal(again.name, 'Ship A (north)')

  await t.rejects(book.add(`/ip4/10.1.2.3/tcp/4001/p2p/${self}`), { code: 'INVALID_INPUT', message: /own peer id/ })
  await t.rejects(book.add(`/ip4/10.1.2.3/tcp/4001/p2p/${id}`, '   '), { code: 'INVALID_INPUT', message: /name/ })

  const returned = book.get(id)
  returned?.addrs.push('tampered')
  t.equal(book.get(id)?.addrs.length, 2, 'callers get copies, not the cache')

  const updated = await book.update(id, { lastSyncAt: 1234, lastError: 'connection refused' })
  t.match(updated, { lastSyncAt: 1234, lastError: 'connection refused' })
  const cleared = await book.update(id, { lastError: null })
  t.notOk('lastError' in cleared, 'null clears lastError')
  t.equal(cleared.lastSyncAt, 1234)

  const other = await newPeerId()
  await book.add(`/ip4/10.1.2.4/tcp/4001/p2p/${other}`)
  t.same(book.list().map(p => p.peerId), [id, other], 'listed oldest first')

  await book.remove(id)
  t.notOk(book.isTrusted(id))
  t.equal(book.get(id), undefined)
  await t.rejects(book.remove(id), { code: 'NOT_FOUND' })
  await t.rejects(book.update(id, { lastSyncAt: 1 }), { code: 'NOT_FOUND' })
  await t.rejects(book.remove('not-a-peer'), { code: 'INVALID_INPUT' })
})

/** A peer book on a fresh LevelDB whose clock the test moves. */
async function bookWithClock (t: Parameters<typeof openTestBook>[0], dir: string, self: string, clock: { now: number }, init: { maxPending?: number, pendingTtlMs?: number } = {}): Promise<{ book: PeerBook, close: () => Promise<void> }> {
  const db = await openDb(dir)
  let open = true
  const close = async (): Promise<void> => { if (open) { open = false; await db.close() } }
  t.teardown(close)
  const book = await PeerBook.open({ trusted: jsonSublevel<PeerEntry>(db, 'peers'), pending: jsonSublevel<PendingPeer>(db, 'pending'), self, now: () => clock.now, ...init })
  return { book, close }
}

void t.test('pending requests: record, approve, dismiss', async (t) => {
  const self = await newPeerId()
  const book = await openTestBook(t, self)
  const [a, b, c] = [await newPeerId(), await newPeerId(), await newPeerId()]

  await book.recordPending(a, '/ip4/10.9.9.1/tcp/50123')
  await book.recordPending(a, '/ip4/10.9.9.1/tcp/50124')
  await book.recordPending(b, `/ip4/10.9.9.2/tcp/50200/p2p/${b}`)
  await book.recordPending(self, '/ip4/10.9.9.4/tcp/50400')
  const pending = book.pending()
  t.same(pending.map(p => p.peerId).sort(), [a, b].sort(), 'own id ignored')
  t.match(pending.find(p => p.peerId === a), { addr: `/ip4/10.9.9.1/tcp/50124/p2p/${a}`, attempts: 2 })
  t.notOk(book.isTrusted(a), 'pending is not trusted')

  const approved = await book.approve(a)
  t.same(approved.addrs, [`/ip4/10.9.9.1/tcp/50124/p2p/${a}`], 'trusted with the address it connected from')
  t.ok(book.isTrusted(a))
  t.same(book.pending().map(p => p.peerId), [b])
  await book.recordPending(a, '/ip4/10.9.9.1/tcp/50125')
  t.same(book.pending().map(p => p.peerId), [b], 'trusted peers are never pending')

  await t.rejects(book.approve(c), { code: 'NOT_FOUND' })
  await t.rejects(book.approve(b, `/ip4/10.9.9.2/tcp/4001/p2p/${c}`), { code: 'INVALID_INPUT', message: /names peer/ })
  const withAddr = await book.approve(b, `/ip4/10.9.9.2/tcp/4001/p2p/${b}`, 'camp B')
  t.match(withAddr, { name: 'camp B', addrs: [`/ip4/10.9.9.2/tcp/4001/p2p/${b}`] }, 'admin may give the listen address')

  await book.recordPending(c, '/ip4/10.9.9.3/tcp/50300')
  await book.dismiss(c)
  t.same(book.pending(), [])
  await t.rejects(book.dismiss(c), { code: 'NOT_FOUND' })

  await book.recordPending(c, '/ip4/10.9.9.3/tcp/50300')
  await book.add(`/ip4/10.9.9.3/tcp/4001/p2p/${c}`)
  t.same(book.pending(), [], 'adding a peer settles its pending request')
})

void t.test('a full pending list makes room for a newcomer by forgetting the peer seen longest ago', async (t) => {
  const clock = { now: 1_000_000 }
  const { book } = await bookWithClock(t, await tempDir(t), await newPeerId(), clock, { maxPending: 3 })
  const [a, b, c, d, e] = await Promise.all(Array.from({ length: 5 }, async () => await newPeerId())) as [string, string, string, string, string]

  await book.recordPending(a, '/ip4/10.9.9.1/tcp/50001')
  clock.now += 1000
  await book.recordPending(b, '/ip4/10.9.9.2/tcp/50002')
  clock.now += 1000
  await book.recordPending(c, '/ip4/10.9.9.3/tcp/50003')
  clock.now += 1000
  await book.recordPending(a, '/ip4/10.9.9.1/tcp/50001')
  t.same(book.pending().map(p => p.peerId), [a, c, b], 'most recently seen first')

  clock.now += 1000
  await book.recordPending(d, '/ip4/10.9.9.4/tcp/50004')
  t.same(book.pending().map(p => p.peerId), [d, a, c], 'the newcomer is listed; b, seen longest ago, made room')
  t.equal(book.pending().length, 3, 'still capped')

  clock.now += 1000
  await book.recordPending(a, '/ip4/10.9.9.1/tcp/50001')
  t.same(book.pending().map(p => p.peerId), [a, d, c], 'a known peer knocking again takes no one\'s place')
  t.match(book.pending()[0], { attempts: 3 })

  await book.dismiss(c)
  clock.now += 1000
  await book.recordPending(e, '/ip4/10.9.9.5/tcp/50005')
  t.same(book.pending().map(p => p.peerId), [e, a, d], 'a dismissed slot is reused without evicting anyone')
})

void t.test('pending requests expire once their peer has not been seen for the TTL, also across a restart', async (t) => {
  t.equal(PENDING_TTL_MS, 7 * 24 * 60 * 60 * 1000, 'the default is a week')
  const dir = await tempDir(t)
  const self = await newPeerId()
  const clock = { now: Date.UTC(2030, 0, 1) }
  const [quiet, retrying, late] = [await newPeerId(), await newPeerId(), await newPeerId()]
  const first = await bookWithClock(t, dir, self, clock)

  await first.book.recordPending(quiet, '/ip4/10.9.9.1/tcp/50001')
  await first.book.recordPending(retrying, '/ip4/10.9.9.2/tcp/50002')
  clock.now += PENDING_TTL_MS / 2
  await first.book.recordPending(retrying, '/ip4/10.9.9.2/tcp/50002')
  clock.now += PENDING_TTL_MS / 2 - 1
  t.same(first.book.pending().map(p => p.peerId).sort(), [quiet, retrying].sort(), 'kept until the TTL has passed')
  clock.now += 1
  t.same(first.book.pending().map(p => p.peerId), [retrying], 'a peer not seen for the TTL is no longer listed')
  await t.rejects(first.book.approve(quiet), { code: 'NOT_FOUND' }, 'an expired request cannot be approved')
  await t.rejects(first.book.dismiss(quiet), { code: 'NOT_FOUND' }, 'nor dismissed: it is gone')
  await first.book.recordPending(late, '/ip4/10.9.9.3/tcp/50003')
  await first.close()

  clock.now += PENDING_TTL_MS / 2
  const second = await bookWithClock(t, dir, self, clock)
  t.same(second.book.pending().map(p => p.peerId), [late], 'requests that expired while the node was down are dropped at open')
  await second.close()

  const db = await openDb(dir)
  t.teardown(async () => { await db.close() })
  const stored = await jsonSublevel<PendingPeer>(db, 'pending').keys().all()
  t.same(stored, [late], 'expired requests are deleted from disk, not only hidden')
})

void t.test('the book survives a restart', async (t) => {
  const dir = await tempDir(t)
  const self = await newPeerId()
  const [a, b] = [await newPeerId(), await newPeerId()]
  const open = async (): Promise<{ book: PeerBook, close: () => Promise<void> }> => {
    const db = await openDb(dir)
    const book = await PeerBook.open({ trusted: jsonSublevel<PeerEntry>(db, 'peers'), pending: jsonSublevel<PendingPeer>(db, 'pending'), self })
    return { book, close: async () => { await db.close() } }
  }

  const first = await open()
  await first.book.add(`/ip4/10.1.2.3/tcp/4001/p2p/${a}`, 'A')
  await first.book.update(a, { lastSyncAt: 42 })
  await first.book.recordPending(b, '/ip4/10.1.2.4/tcp/50000')
  await first.close()

  const second = await open()
  t.teardown(second.close)
  t.ok(second.book.isTrusted(a), 'trust is loaded into memory at open')
  t.match(second.book.get(a), { name: 'A', lastSyncAt: 42 })
  t.same(second.book.pending().map(p => p.peerId), [b])
})

void t.test('concurrent updates are not lost', async (t) => {
  const book = await openTestBook(t, await newPeerId())
  const id = await newPeerId()
  const addrs = Array.from({ length: 20 }, (_, i) => `/ip4/10.0.0.${i + 1}/tcp/4001/p2p/${id}`)
  await Promise.all(addrs.map(async addr => await book.add(addr)))
  t.equal(book.get(id)?.addrs.length, 20)
})
