import t from 'tap'
import { copyTarget, rankFor, shouldFetch } from '../../src/warehouse/copy-policy.ts'

const mesh = (copies?: number, copiesByTag: Record<string, number> = {}): { copies: number | undefined, copiesByTag: Record<string, number> } => ({ copies, copiesByTag })

t.test('the copy target: mesh-wide (default 2), per tag, per record; the highest wins', async t => {
  t.equal(copyTarget(mesh(), {}), 2, 'the default')
  t.equal(copyTarget(mesh(3), {}), 3, 'the mesh-wide setting')
  t.equal(copyTarget(mesh(1), {}), 1, 'the mesh may keep fewer than the default')
  t.equal(copyTarget(mesh(2, { raw: 4, old: 1 }), { tags: ['raw'] }), 4, 'a tag asks for more')
  t.equal(copyTarget(mesh(3, { old: 1 }), { tags: ['old'] }), 3, 'a tag cannot ask for fewer than the mesh')
  t.equal(copyTarget(mesh(2, { raw: 4, x: 6 }), { tags: ['raw', 'x'] }), 6, 'of several tags, the highest')
  t.equal(copyTarget(mesh(2, { raw: 4 }), { tags: ['raw'], copies: 5 }), 5, 'the record\'s own target')
  t.equal(copyTarget(mesh(2, { raw: 4 }), { tags: ['raw'], copies: 3 }), 4, 'a record cannot ask for fewer than its tag')
  t.equal(copyTarget(mesh(), { copies: 0 }), 2, 'an invalid record target is ignored')
  t.equal(copyTarget(mesh(), { copies: 'two' }), 2)
  t.equal(copyTarget(mesh(), { copies: 11 }), 2)
})

t.test('the ranking: deterministic, independent of input order, and spread over the peers', async t => {
  const peers = ['peer-a', 'peer-b', 'peer-c', 'peer-d']
  const sha = 'f'.repeat(64)
  t.same(rankFor(sha, peers), rankFor(sha, [...peers].reverse()), 'the same whatever the order')
  t.same(rankFor(sha, peers).length, 4)
  // Removing a peer keeps the others in the same relative order (rendezvous).
  const without = rankFor(sha, peers.filter(p => p !== 'peer-b'))
  t.same(without, rankFor(sha, peers).filter(p => p !== 'peer-b'))
  const firsts = new Set<string>()
  for (let i = 0; i < 64; i++) firsts.add(rankFor(i.toString(16).padStart(64, '0'), peers)[0] as string)
  t.equal(firsts.size, 4, 'every peer comes first for some file')
})

t.test('who fetches: the top (target − copies) of the members lacking the file, and anyone after the grace period', async t => {
  const sha = '1'.repeat(64)
  const members = ['a', 'b', 'c', 'd']
  const holders = new Set(['a'])
  const ranked = rankFor(sha, ['b', 'c', 'd'])
  const base = { sha256: sha, members, holders, belowSince: 1000, now: 1000, graceMs: 60_000 }
  t.equal(shouldFetch({ ...base, target: 2, self: ranked[0] as string }), true, 'the top candidate fetches')
  t.equal(shouldFetch({ ...base, target: 2, self: ranked[1] as string }), false, 'the next waits')
  t.equal(shouldFetch({ ...base, target: 3, self: ranked[1] as string }), true, 'two missing copies: the top two fetch')
  t.equal(shouldFetch({ ...base, target: 2, self: ranked[2] as string, now: 1000 + 60_000 }), true, 'after the grace period, anyone lacking it')
  t.equal(shouldFetch({ ...base, target: 2, self: 'a' }), false, 'a holder does not fetch')
  t.equal(shouldFetch({ ...base, target: 1, self: ranked[0] as string }), false, 'at target: nobody fetches')
  t.equal(shouldFetch({ ...base, target: 2, self: 'stranger', now: 1e12 }), false, 'a node outside the roster never fetches')
})
