// Two requests for the same free username on one node: both passed the
// check while their passwords were hashing, and the node acknowledged both
// (a partition simulation, seed 108, then found it resolving the name to
// the other account). Now one gets the name and the other 409 CONFLICT.
import t from 'tap'
import { trustNode } from '../helpers/trust-fixture.ts'

t.test('two creates of one free username at once: exactly one succeeds', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const results = await Promise.allSettled([
    F.core.users.create(F.admin, { username: 'contested', password: 'correct horse battery', role: 'member' }),
    F.core.users.create(F.admin, { username: 'Contested', password: 'correct horse battery', role: 'member' })
  ])
  const made = results.filter(r => r.status === 'fulfilled')
  const refused = results.filter(r => r.status === 'rejected')
  t.equal(made.length, 1, 'one account made')
  t.match(refused, [{ reason: { code: 'CONFLICT' } }], 'the other refused as taken')
  t.same(F.core.users.conflicts(), [], 'no username conflict on this node')
})

t.test('two renames to one free username at once: exactly one succeeds', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const a = await F.core.users.create(F.admin, { username: 'alice', password: 'correct horse battery', role: 'member' })
  const b = await F.core.users.create(F.admin, { username: 'bob', password: 'correct horse battery', role: 'member' })
  const results = await Promise.allSettled([
    F.core.users.update(F.admin, String(a.id), { username: 'carol', password: 'another horse battery' }),
    F.core.users.update(F.admin, String(b.id), { username: 'carol', password: 'another horse battery' })
  ])
  t.equal(results.filter(r => r.status === 'fulfilled').length, 1, 'one account renamed')
  t.match(results.filter(r => r.status === 'rejected'), [{ reason: { code: 'CONFLICT' } }])
  t.same(F.core.users.conflicts(), [])
})
