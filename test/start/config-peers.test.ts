// Peers and announce addresses from config.json and DW_PEERS: what is
// accepted, what stops the start (CONFIG_INVALID, naming the entry), and
// what adding them at start does to a peer book an admin has already shaped.
import { generateKeyPair } from '@libp2p/crypto/keys'
import t from 'tap'
import { jsonSublevel, openDb } from '../../src/db.ts'
import { AuditLog, type AuditEntry } from '../../src/audit.ts'
import { peerIdOf } from '../../src/peer/identity.ts'
import { PeerBook, type PeerEntry, type PendingPeer } from '../../src/peer/peer-book.ts'
import { addConfigPeers, resolveAnnounce, resolveConfigPeers, type AppliedPeer, type ConfigPeerDeps } from '../../src/start/config-peers.ts'
import type { Nodes } from '../../src/warehouse/nodes.ts'
import type { Standing } from '../../src/trust/roster.ts'
import { tempDir } from '../helpers/tmp.ts'

async function newPeerId (): Promise<string> {
  return peerIdOf(await generateKeyPair('Ed25519'))
}

void t.test('config.json peers and DW_PEERS: accepted, merged, env adds to the file', async (t) => {
  const [self, a, b, c] = [await newPeerId(), await newPeerId(), await newPeerId(), await newPeerId()]
  t.same(resolveConfigPeers(undefined, undefined, self), [], 'no peers: nothing to add')
  t.same(resolveConfigPeers([], '  ', self), [])
  const wanted = resolveConfigPeers(
    [{ multiaddr: `/ip4/10.0.0.1/tcp/4001/p2p/${a}`, name: 'site-a', role: 'full' }, { multiaddr: `/dns4/b.example.org/tcp/4001/p2p/${b}` }],
    `/ip4/10.0.0.9/tcp/4001/p2p/${a},/ip4/10.0.0.3/tcp/4001/p2p/${c}\n /ip4/10.0.0.3/tcp/4001/p2p/${c}  /ip4/10.0.0.1/tcp/4001/p2p/${a}`,
    self
  )
  t.same(wanted, [
    { peerId: a, addrs: [`/ip4/10.0.0.1/tcp/4001/p2p/${a}`, `/ip4/10.0.0.9/tcp/4001/p2p/${a}`], name: 'site-a', role: 'full', source: 'config.json peers[0]' },
    { peerId: b, addrs: [`/dns4/b.example.org/tcp/4001/p2p/${b}`], source: 'config.json peers[1]' },
    { peerId: c, addrs: [`/ip4/10.0.0.3/tcp/4001/p2p/${c}`], source: 'DW_PEERS' }
  ], 'an env address of a file peer joins that peer; commas, spaces and newlines separate; repeats merge')
})

void t.test('a bad peer entry stops the start with CONFIG_INVALID naming it', async (t) => {
  const [self, a] = [await newPeerId(), await newPeerId()]
  const ok = `/ip4/10.0.0.1/tcp/4001/p2p/${a}`
  const cases: Array<[string, unknown, string | undefined, RegExp]> = [
    ['not a list', { multiaddr: ok }, undefined, /"peers" must be a list/],
    ['not an object', [ok], undefined, /peers\[0\] must be an object/],
    ['no multiaddr', [{ name: 'x' }], undefined, /peers\[0\] needs "multiaddr"/],
    ['missing peer id', [{ multiaddr: '/ip4/10.0.0.1/tcp/4001' }], undefined, /peers\[0\]: .*does not end in \/p2p\/<peerId>/],
    ['not a multiaddr', [{ multiaddr: 'site-a:4001' }], undefined, /peers\[0\]: .*not a multiaddr/],
    ['bad peer id', [{ multiaddr: '/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWnope' }], undefined, /peers\[0\]: .*not a valid/],
    ['own peer id', [{ multiaddr: `/ip4/10.0.0.1/tcp/4001/p2p/${self}` }], undefined, /peers\[0\]: .*this node's own peer id/],
    ['wildcard host', [{ multiaddr: `/ip4/0.0.0.0/tcp/4001/p2p/${a}` }], undefined, /peers\[0\]: .*wildcard/],
    ['unknown key', [{ multiaddr: ok, roel: 'full' }], undefined, /peers\[0\] has "roel", which is not a peer setting/],
    ['bad role', [{ multiaddr: ok, role: 'admin' }], undefined, /peers\[0\] "role" must be one of full, contributor, read-only/],
    ['bad name', [{ multiaddr: ok, name: '' }], undefined, /peers\[0\]: a peer name/],
    ['duplicate peer', [{ multiaddr: ok }, { multiaddr: `/ip4/10.0.0.2/tcp/4001/p2p/${a}` }], undefined, /peers\[1\] names peer .* again \(config.json peers\[0\] already does\)/],
    ['bad env entry', [], `${ok}, /ip4/10.0.0.2/tcp/4001`, /DW_PEERS entry 2: .*does not end in \/p2p/],
    ['own id in env', [], `/ip4/10.0.0.1/tcp/4001/p2p/${self}`, /DW_PEERS entry 1: .*own peer id/]
  ]
  for (const [what, configured, env, message] of cases) {
    t.throws(() => resolveConfigPeers(configured, env, self), { code: 'CONFIG_INVALID', message }, what)
  }
})

void t.test('announce addresses: checked, own peer id allowed and dropped, CLI adds to config', async (t) => {
  const [self, other] = [await newPeerId(), await newPeerId()]
  t.same(resolveAnnounce(undefined, [], self), [])
  t.same(
    resolveAnnounce(['/ip4/203.0.113.7/tcp/4001', `/dns4/site-a.example.org/tcp/14001/p2p/${self}`], ['/ip4/203.0.113.7/tcp/4001', '/ip6/2001:db8::7/tcp/4001'], self),
    ['/ip4/203.0.113.7/tcp/4001', '/dns4/site-a.example.org/tcp/14001', '/ip6/2001:db8::7/tcp/4001']
  )
  const cases: Array<[unknown, string[], RegExp]> = [
    ['/ip4/203.0.113.7/tcp/4001', [], /"announce" must be a list/],
    [['nonsense'], [], /announce\[0\]: .*not a valid multiaddr/],
    [['/ip4/203.0.113.7/udp/4001'], [], /announce\[0\]: .*not a TCP address/],
    [['/ip4/0.0.0.0/tcp/4001'], [], /announce\[0\]: .*wildcard/],
    [['/ip4/203.0.113.7/tcp/0'], [], /announce\[0\]: .*port 0/],
    [[`/ip4/203.0.113.7/tcp/4001/p2p/${other}`], [], /announce\[0\]: .*not this node/],
    [[], ['/ip4/203.0.113.7'], /--announce: .*not a TCP address/]
  ]
  for (const [configured, extra, message] of cases) {
    t.throws(() => resolveAnnounce(configured, extra, self), { code: 'CONFIG_INVALID', message }, String(message))
  }
})

/** A peer book and audit log on a fresh LevelDB, a roster stub, and the warnings given. */
async function setup (t: Parameters<typeof tempDir>[0], standing: (peerId: string) => Standing): Promise<{ deps: ConfigPeerDeps, warnings: string[], audited: () => Promise<AuditEntry[]>, enrolled: Array<[string, string]>, added: string[] }> {
  const db = await openDb(await tempDir(t, 'dw-config-peers-'))
  t.teardown(async () => { await db.close() })
  const self = await newPeerId()
  const book = await PeerBook.open({ trusted: jsonSublevel<PeerEntry>(db, 'peers'), pending: jsonSublevel<PendingPeer>(db, 'pending'), self })
  const audit = new AuditLog(jsonSublevel<AuditEntry>(db, 'audit'))
  const enrolled: Array<[string, string]> = []
  const nodes = {
    standing: async (peerId: string) => peerId === self ? standing(self) : enrolled.some(([p]) => p === peerId) ? 'contributor' : standing(peerId),
    enrol: async (_who: unknown, peerId: string, role: string) => { enrolled.push([peerId, role]); return true }
  } as unknown as Nodes
  const warnings: string[] = []
  const added: string[] = []
  const deps: ConfigPeerDeps = {
    book, nodes, audit,
    applied: jsonSublevel<AppliedPeer>(db, 'config-peers'),
    admin: { userId: 'admin-1', username: 'admin', role: 'admin' },
    self,
    added: p => { added.push(p) },
    warn: m => { warnings.push(m) }
  }
  return { deps, warnings, enrolled, added, audited: async () => (await audit.list({ limit: 100 })).reverse() }
}

void t.test('adding config peers at start: once, audited, never overwriting what an admin set', async (t) => {
  const { deps, warnings, audited, enrolled, added } = await setup(t, () => 'unknown')
  const [a, b] = [await newPeerId(), await newPeerId()]
  const wanted = resolveConfigPeers([{ multiaddr: `/ip4/10.0.0.1/tcp/4001/p2p/${a}`, name: 'site-a', role: 'full' }], `/ip4/10.0.0.2/tcp/4001/p2p/${b} /ip4/10.0.0.22/tcp/4001/p2p/${b}`, deps.self)

  await addConfigPeers(deps, wanted)
  t.same(deps.book.get(a)?.addrs, [`/ip4/10.0.0.1/tcp/4001/p2p/${a}`])
  t.equal(deps.book.get(a)?.name, 'site-a')
  t.same(deps.book.get(b)?.addrs, [`/ip4/10.0.0.2/tcp/4001/p2p/${b}`, `/ip4/10.0.0.22/tcp/4001/p2p/${b}`], 'every address of an env peer')
  t.same(added, [a, b], 'each new peer is dialled')
  const entries = await audited()
  t.same(entries.map(e => [e.type, e.actor, e.peer, e.details?.from]), [
    ['peer.add', 'admin-1', a, 'config.json peers[0]'],
    ['peer.add', 'admin-1', b, 'DW_PEERS']
  ], 'audited as the local admin, with where it came from')
  t.same(enrolled, [], 'not a full node: nobody enrolled')
  t.match(warnings, [/config.json peers\[0\]: "role" ignored .* not a full node/], 'a role that cannot be given is reported')

  // The admin renames a, and removes b; the next start changes neither.
  await deps.book.update(a, { name: 'renamed' })
  await deps.book.remove(b)
  warnings.length = 0
  added.length = 0
  await addConfigPeers(deps, wanted)
  t.equal(deps.book.get(a)?.name, 'renamed', 'an entry already present is left as the admin set it')
  t.equal(deps.book.get(b), undefined, 'a config peer an admin removed stays removed')
  t.same(added, [])
  t.equal((await audited()).length, 2, 'nothing new audited')
  t.match(warnings, [/DW_PEERS: peer .* was removed from the peer book after this node added it from config; not added again/])

  // A new address for a present peer is reported, not merged in.
  warnings.length = 0
  await addConfigPeers(deps, resolveConfigPeers([{ multiaddr: `/ip4/10.0.0.5/tcp/4001/p2p/${a}` }], undefined, deps.self))
  t.same(deps.book.get(a)?.addrs, [`/ip4/10.0.0.1/tcp/4001/p2p/${a}`])
  t.match(warnings, [/already in the peer book without \/ip4\/10.0.0.5/])
})

void t.test('on a full node a config peer joins the roster as the API would; revoked peers are not added', async (t) => {
  const revoked = await newPeerId()
  const { deps, warnings, audited, enrolled } = await setup(t, peerId => peerId === revoked ? 'revoked' : 'full')
  const [a, b] = [await newPeerId(), await newPeerId()]
  await addConfigPeers(deps, resolveConfigPeers([
    { multiaddr: `/ip4/10.0.0.1/tcp/4001/p2p/${a}`, role: 'full' },
    { multiaddr: `/ip4/10.0.0.2/tcp/4001/p2p/${b}` },
    { multiaddr: `/ip4/10.0.0.3/tcp/4001/p2p/${revoked}` }
  ], undefined, deps.self))
  t.same(enrolled, [[a, 'full'], [b, 'contributor']], 'role as given, contributor by default')
  t.equal(deps.book.get(revoked), undefined, 'a revoked node is not trusted again')
  t.match(warnings, [/peers\[2\]: peer .* was revoked from the mesh; not added/])
  t.same((await audited()).map(e => [e.type, e.peer, e.details?.role]), [
    ['peer.add', a, undefined], ['node.role', a, 'full'], ['peer.add', b, undefined], ['node.role', b, 'contributor']
  ])
})
