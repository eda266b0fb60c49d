// config.json `login.passwordCost` sets scrypt's cost for passwords set
// from then on (a node with little memory can lower it); hashes keep their
// own cost, so one made at another cost still verifies. An unknown
// username costs what a current hash costs.
import t from 'tap'
import { parseLoginLimits } from '../../src/auth/login-guard.ts'
import { DEFAULT_SCRYPT_PARAMS, dummyVerify, hashPassword, scryptParams, verifyPassword } from '../../src/auth/passwords.ts'
import { docKey } from '../../src/crdt/keys.ts'
import { startTestNode } from '../helpers/node.ts'

t.test('login.passwordCost: 14 to 20, anything else refused with its range', async t => {
  t.same(parseLoginLimits({ passwordCost: 14 }), { passwordCost: 14 })
  t.same(parseLoginLimits({ passwordCost: 20 }), { passwordCost: 20 })
  for (const bad of [13, 21, 16.5, '15', -1]) {
    t.throws(() => parseLoginLimits({ passwordCost: bad }), { code: 'CONFIG_INVALID', message: /login\.passwordCost/ }, JSON.stringify(bad))
  }
  t.equal(scryptParams(undefined), DEFAULT_SCRYPT_PARAMS, 'unset: the default, N=2^17')
  t.same(scryptParams(15), { ...DEFAULT_SCRYPT_PARAMS, ln: 15 })
})

t.test('hashes carry their cost: one made at 14 verifies on a node whose cost is 17, and the other way round', async t => {
  const cheap = await hashPassword('field password', scryptParams(14))
  t.match(cheap, /^\$scrypt\$ln=14,r=8,p=1\$/)
  t.ok(await verifyPassword('field password', cheap))
  t.notOk(await verifyPassword('field passworD', cheap))
  t.equal(await dummyVerify('anything', scryptParams(14)), false)
})

t.test('a node hashes its admin and new accounts at its cost, and logs them in', async t => {
  // Test nodes run at 14 (test/helpers/node.ts).
  const n = await startTestNode(t)
  const created = await n.node.api.inject({ method: 'POST', url: '/users', headers: n.admin, payload: { username: 'clinic', password: 'clinic password', role: 'member' } })
  t.equal(created.statusCode, 201)
  const hashOf = async (id: string): Promise<string> => await n.node.docs.read(docKey('user', id), d => String(d?.passwordHash))
  t.match(await hashOf(created.json().id), /^\$scrypt\$ln=14,/)
  t.match(await hashOf(n.node.config.adminUserId), /^\$scrypt\$ln=14,/)
  const login = await n.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'clinic', password: 'clinic password' } })
  t.equal(login.statusCode, 200)
  const wrong = await n.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'nobody', password: 'clinic password' } })
  t.equal(wrong.statusCode, 401)
})
