// A contributor site may act only for accounts that list it: a stolen
// contributor cannot write in the name of members who never used it.
import t from 'tap'
import { addMember, startTestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'

t.test('a member writes through a contributor site once an admin lists the site on the account', async t => {
  const full = await startTestNode(t)
  const contributor = await startTestNode(t)
  await link(full, contributor, 'contributor')
  const member = await addMember(full, 'rita')
  await eventually(async () => (await contributor.node.api.inject({ url: `/users/${member.id}`, headers: contributor.admin })).statusCode === 200, 20_000, 'account reaches the contributor')
  const onC = await contributor.login('rita', 'member password')

  const refused = await contributor.node.api.inject({ method: 'POST', url: '/datasets', headers: onC, payload: { name: 'from the contributor' } })
  t.equal(refused.statusCode, 403)
  t.match(refused.json().error.message, /may not act for account/)
  t.equal((await contributor.node.api.inject({ url: '/datasets', headers: onC })).json().items.length, 0, 'nothing was written')

  const noAccounts = await contributor.node.api.inject({ method: 'POST', url: '/users', headers: contributor.admin, payload: { username: 'someone', password: 'a long password', role: 'member' } })
  t.equal(noAccounts.statusCode, 403, 'a contributor site creates no accounts')
  t.match(noAccounts.json().error.message, /only full nodes change accounts/)

  const listed = await full.node.api.inject({ method: 'PATCH', url: `/users/${member.id}`, headers: full.admin, payload: { sites: [contributor.node.peerId] } })
  t.equal(listed.statusCode, 200)
  let made: any
  await eventually(async () => {
    made = await contributor.node.api.inject({ method: 'POST', url: '/datasets', headers: await contributor.login('rita', 'member password'), payload: { name: 'from the contributor' } })
    return made.statusCode === 201
  }, 20_000, 'the listed site writes for the member')
  await eventually(async () => (await full.node.api.inject({ url: `/datasets/${made.json().id as string}`, headers: full.admin })).statusCode === 200, 20_000, 'and the full site accepts it')
  t.pass('accepted on the full site')
})
