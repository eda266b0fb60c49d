// A password change, role change, disable or delete made on one site ends
// that user's sessions on every site once the change arrives.
import t from 'tap'
import { addMember, startTestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'

t.test('credential changes on one site end sessions on the others', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)
  const changes: Array<[string, object]> = [
    ['password', { password: 'a brand new password' }],
    ['role', { role: 'admin' }],
    ['disabled', { disabled: true }]
  ]
  for (const [what, patch] of changes) {
    const member = await addMember(a, `m-${what}`)
    await eventually(async () => (await b.node.api.inject({ url: `/users/${member.id}`, headers: b.admin })).statusCode === 200, 20_000, 'account on b')
    const onB = await b.login(`m-${what}`, 'member password')
    t.equal((await b.node.api.inject({ url: '/datasets', headers: onB })).statusCode, 200, `${what}: signed in on b`)
    const res = await a.node.api.inject({ method: 'PATCH', url: `/users/${member.id}`, headers: a.admin, payload: patch })
    t.equal(res.statusCode, 200)
    await eventually(async () => (await b.node.api.inject({ url: '/datasets', headers: onB })).statusCode === 401, 20_000, `${what} change ends the session on b`)
    t.pass(`${what}: the session on b ended`)
  }
  // Users change their own password on any full site: a change that references the account's own state.
  const self = await addMember(a, 'm-self')
  await eventually(async () => (await b.node.api.inject({ url: `/users/${self.id}`, headers: b.admin })).statusCode === 200, 20_000, 'account on b')
  const selfOnB = await b.login('m-self', 'member password')
  const own = await b.node.api.inject({ method: 'PATCH', url: `/users/${self.id}`, headers: selfOnB, payload: { password: 'my own new password', currentPassword: 'member password' } })
  t.equal(own.statusCode, 200, 'changed on b by the user')
  await eventually(async () => (await a.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'm-self', password: 'my own new password' } })).statusCode === 200, 20_000, 'the new password works on a')
  await eventually(async () => (await a.node.api.inject({ url: '/datasets', headers: self.headers })).statusCode === 401, 20_000, 'the old session on a ended')
  t.pass('a self-service change is admitted elsewhere')

  const member = await addMember(a, 'm-deleted')
  await eventually(async () => (await b.node.api.inject({ url: `/users/${member.id}`, headers: b.admin })).statusCode === 200, 20_000, 'account on b')
  const onB = await b.login('m-deleted', 'member password')
  t.equal((await a.node.api.inject({ method: 'DELETE', url: `/users/${member.id}`, headers: a.admin })).statusCode, 204)
  await eventually(async () => (await b.node.api.inject({ url: '/datasets', headers: onB })).statusCode === 401, 20_000, 'delete ends the session on b')
  // An admin brings the account back; it signs in again, with new sessions only.
  t.equal((await b.node.api.inject({ method: 'POST', url: `/users/${member.id}/restore`, headers: b.admin })).statusCode, 200)
  await eventually(async () => (await a.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'm-deleted', password: 'member password' } })).statusCode === 200, 20_000, 'restored account signs in on a')
  t.equal((await b.node.api.inject({ url: '/datasets', headers: onB })).statusCode, 401, 'the old session stays ended')
})
