// Every kind of bad request gets a 4xx with a clear JSON message and leaves
// the store exactly as it was (the feed sequence does not move).
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { addMember, startTestNode } from '../helpers/node.ts'

t.test('bad input is refused with a clear 4xx and changes nothing', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const ds = (await api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'target' } })).json()
  const json = { ...n.admin, 'content-type': 'application/json' }
  const cases: Array<{ what: string, req: InjectOptions, status: number }> = [
    { what: 'malformed JSON', req: { method: 'POST', url: '/datasets', headers: json, payload: '{"name": "x",' }, status: 400 },
    { what: 'wrong type', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 42 } }, status: 400 },
    { what: 'missing required field', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { description: 'no name' } }, status: 400 },
    { what: 'blank name', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: '   ' } }, status: 400 },
    { what: 'unknown field', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x', colour: 'red' } }, status: 400 },
    { what: 'unknown patch field', req: { method: 'PATCH', url: `/datasets/${ds.id}`, headers: n.admin, payload: { nmae: 'typo' } }, status: 400 },
    { what: 'empty patch', req: { method: 'PATCH', url: `/datasets/${ds.id}`, headers: n.admin, payload: {} }, status: 400 },
    { what: 'oversized name', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x'.repeat(201) } }, status: 400 },
    { what: 'oversized metadata', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x', metadata: { blob: 'y'.repeat(70_000) } } }, status: 413 },
    { what: 'oversized body', req: { method: 'POST', url: '/datasets', headers: json, payload: JSON.stringify({ name: 'x', description: 'z'.repeat(2 * 1024 * 1024) }) }, status: 413 },
    { what: 'tag with a comma', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x', tags: ['a,b'] } }, status: 400 },
    { what: 'duplicate tags', req: { method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x', tags: ['a', 'a'] } }, status: 400 },
    { what: 'not a uuid', req: { method: 'GET', url: '/datasets/../../etc/passwd', headers: n.admin }, status: 404 },
    { what: 'bad id param', req: { method: 'PATCH', url: '/datasets/not-an-id', headers: n.admin, payload: { name: 'x' } }, status: 400 },
    { what: 'unknown record', req: { method: 'PATCH', url: '/datasets/01900000-0000-7000-8000-000000000000', headers: n.admin, payload: { name: 'x' } }, status: 404 },
    { what: 'no token', req: { method: 'POST', url: '/datasets', payload: { name: 'x' } }, status: 401 },
    { what: 'garbage token', req: { method: 'POST', url: '/datasets', headers: { authorization: 'Bearer not a token' }, payload: { name: 'x' } }, status: 401 },
    { what: 'unknown token', req: { method: 'POST', url: '/datasets', headers: { authorization: 'Bearer ' + 'A'.repeat(43) }, payload: { name: 'x' } }, status: 401 },
    { what: 'bad query param', req: { method: 'GET', url: '/datasets?limit=0', headers: n.admin }, status: 400 },
    { what: 'unknown query param', req: { method: 'GET', url: '/datasets?sort=name', headers: n.admin }, status: 400 },
    { what: 'wrong content type', req: { method: 'POST', url: '/datasets', headers: { ...n.admin, 'content-type': 'text/plain' }, payload: 'name=x' }, status: 415 },
    { what: 'version without multipart', req: { method: 'POST', url: `/datasets/${ds.id}/versions`, headers: n.admin, payload: { files: [] } }, status: 400 },
    { what: 'unknown route', req: { method: 'GET', url: '/nope', headers: n.admin }, status: 404 },
    { what: 'weak password', req: { method: 'POST', url: '/users', headers: n.admin, payload: { username: 'newbie', password: 'short' } }, status: 400 },
    { what: 'bad username', req: { method: 'POST', url: '/users', headers: n.admin, payload: { username: '../root', password: 'long enough pw' } }, status: 400 },
    { what: 'taken username', req: { method: 'POST', url: '/users', headers: n.admin, payload: { username: 'ADMIN', password: 'long enough pw' } }, status: 409 }
  ]
  const before = n.node.docs.seq
  for (const c of cases) {
    const res = await api.inject(c.req)
    const status = c.status === 415 ? [400, 415] : [c.status]
    t.ok(status.includes(res.statusCode), `${c.what}: ${res.statusCode} ${res.body.slice(0, 120)}`)
    if (res.statusCode !== 404 || c.what !== 'not a uuid') {
      const body = res.json()
      t.type(body.error?.message, 'string', `${c.what}: JSON error with a message`)
      t.type(body.error?.code, 'string', `${c.what}: stable code`)
    }
  }
  t.equal(n.node.docs.seq, before, 'nothing was written')
  t.equal((await api.inject({ url: `/datasets/${ds.id}`, headers: n.admin })).json().name, 'target')
})

t.test('tokens: other users, logout, disabled and deleted accounts', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const maria = await addMember(n, 'maria')
  t.equal((await api.inject({ method: 'POST', url: '/auth/logout', headers: maria.headers })).statusCode, 204)
  t.equal((await api.inject({ url: '/datasets', headers: maria.headers })).statusCode, 401, 'a revoked token is dead')
  const again = await n.login('maria', 'member password')
  t.equal((await api.inject({ method: 'PATCH', url: `/users/${maria.id}`, headers: n.admin, payload: { disabled: true } })).statusCode, 200)
  t.equal((await api.inject({ url: '/datasets', headers: again })).statusCode, 401, 'disabling ends sessions')
  const denied = await api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'maria', password: 'member password' } })
  t.equal(denied.statusCode, 401)
  const unknown = await api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'nobody', password: 'member password' } })
  t.equal(unknown.statusCode, 401)
  t.equal(denied.json().error.message, unknown.json().error.message, 'same answer for disabled and unknown')

  const li = await addMember(n, 'li')
  t.equal((await api.inject({ method: 'DELETE', url: `/users/${li.id}`, headers: n.admin })).statusCode, 204)
  t.equal((await api.inject({ url: '/datasets', headers: li.headers })).statusCode, 401, 'deleting ends sessions')
})

t.test('repeated failed logins are slowed, then locked with 429 and Retry-After', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  let last
  for (let i = 0; i < 11; i++) {
    last = await api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'admin', password: `wrong ${i}` } })
  }
  t.equal(last?.statusCode, 429)
  t.equal(last?.json().error.code, 'TOO_MANY_ATTEMPTS')
  t.ok(Number(last?.headers['retry-after']) > 0)
  const right = await api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'admin', password: 'correct horse battery' } })
  t.equal(right.statusCode, 429, 'locked even for the right password')
  const ghost = []
  for (let i = 0; i < 11; i++) ghost.push((await api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'ghost', password: `wrong ${i}` } })).statusCode)
  t.equal(ghost.at(-1), 429, 'unknown usernames lock the same way')
})

t.test('JSON nested too deep is refused with 400 before it is parsed, and the node goes on', async t => {
  const n = await startTestNode(t)
  const member = await addMember(n, 'deep')
  const headers = { ...member.headers, 'content-type': 'application/json' }
  const nest = (d: number): string => '{"a":'.repeat(d) + '1' + '}'.repeat(d)
  for (const depth of [33, 1100, 5000, 100_000]) {
    const res = await n.node.api.inject({ method: 'POST', url: '/datasets', headers, payload: `{"name":"deep","metadata":${nest(depth)}}` })
    t.equal(res.statusCode, 400, `metadata ${depth} levels deep`)
    t.match(res.json().error.message, /nests deeper than 32 levels/)
  }
  const brackets = await n.node.api.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/json' }, payload: `{"username":${'['.repeat(5000)}${']'.repeat(5000)}}` })
  t.equal(brackets.statusCode, 400, 'an unauthenticated body too')
  const inString = await n.node.api.inject({ method: 'POST', url: '/datasets', headers, payload: JSON.stringify({ name: '{'.repeat(100) + '"[\\'.repeat(20), metadata: { a: { b: { c: 1 } } } }) })
  t.equal(inString.statusCode, 201, 'brackets inside strings do not count')
  const poisoned = await n.node.api.inject({ method: 'POST', url: '/datasets', headers, payload: '{"name":"p","metadata":{"__proto__":{"admin":true}}}' })
  t.equal(poisoned.statusCode, 400, '__proto__ keys are still refused')
  const after = await n.node.api.inject({ method: 'POST', url: '/datasets', headers, payload: JSON.stringify({ name: 'after' }) })
  t.equal(after.statusCode, 201, 'the node goes on creating')
  t.equal((await n.node.api.inject({ url: '/datasets', headers: n.admin })).json().items.length, 2, 'only the two good records were written')
})
