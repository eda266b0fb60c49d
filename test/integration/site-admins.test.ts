// Records made by another site's bootstrap admin (a local account, never
// replicated) name it `admin@<site>` instead of a bare id, and
// GET /users/<its id> describes it instead of answering 404 (issue 10).
import t from 'tap'
import { startTestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { dw } from '../cli/helpers.ts'
import { localAdminIdOf } from '../../src/trust/roster.ts'
import { shortPeerId, siteAdminOf } from '../../src/warehouse/site-admins.ts'

t.test('siteAdminOf names the site, or the short peer id without a name', async t => {
  const peerId = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
  t.match(siteAdminOf({ peerId, name: 'ross-island' }), { id: localAdminIdOf(peerId), username: 'admin@ross-island', role: 'admin', readOnly: true })
  t.equal(siteAdminOf({ peerId, name: '' }).username, `admin@${shortPeerId(peerId)}`)
})

t.test('another site\'s bootstrap admin shows as admin@<site> in lists, views, GET /users/<id> and the CLI', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)
  const entry = (await b.node.nodes.list()).find(e => e.peerId === a.node.peerId)
  t.ok(entry, 'B holds A in its roster')
  const expected = siteAdminOf(entry as { peerId: string, name: string }).username
  const aAdmin = localAdminIdOf(a.node.peerId)

  const created = (await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: 'Ice cores' } })).json()
  t.equal(created.owner, aAdmin, 'owned by A\'s bootstrap admin')
  await eventually(async () => (await b.node.api.inject({ url: `/datasets/${created.id as string}`, headers: b.admin })).statusCode === 200, 20_000, 'the dataset on B')

  const view = (await b.node.api.inject({ url: `/datasets/${created.id as string}`, headers: b.admin })).json()
  t.match(view, { owner: aAdmin, ownerName: expected, createdBy: aAdmin, createdByName: expected, updatedByName: expected })
  const list = (await b.node.api.inject({ url: '/datasets', headers: b.admin })).json()
  t.match(list.items, [{ id: created.id, owner: aAdmin, ownerName: expected }])

  const user = await b.node.api.inject({ url: `/users/${aAdmin}`, headers: b.admin })
  t.equal(user.statusCode, 200, 'not a 404')
  t.match(user.json(), { id: aAdmin, username: expected, role: 'admin', peerId: a.node.peerId, readOnly: true, bootstrapAdmin: true })
  t.equal((await b.node.api.inject({ url: '/users/01900000-0000-7000-8000-000000000000', headers: b.admin })).statusCode, 404, 'an unknown id is still 404')
  const local = (await a.node.api.inject({ url: `/users/${aAdmin}`, headers: a.admin })).json()
  t.match(local, { username: 'admin' }, 'on its own site it is the local account')
  t.notOk(local.readOnly)

  const table = await dw(['dataset', 'ls', '--data', b.dataDir])
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, new RegExp(`Ice cores\\s+admin@${expected.slice('admin@'.length)}`))
  t.notMatch(table.stdout, aAdmin, 'no bare id')
  const show = await dw(['dataset', 'show', created.id, '--data', b.dataDir])
  t.match(show.stdout, new RegExp(`owner:\\s+${expected}`))
})
