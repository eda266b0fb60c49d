import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { initNode, NODE_TOKEN_FILE, type NodeTokenFile } from '../../src/node.ts'
import { readConfig, writeConfig, type NodeConfig } from '../../src/config.ts'
import { ADMIN_PASSWORD, TEST_LOGIN, startTestNode, type TestNode } from '../helpers/node.ts'
import { tempDir } from '../helpers/tmp.ts'

type T = Parameters<typeof startTestNode>[0]

/** A real node whose config.json sets `login` limits. */
async function nodeWith (t: T, login: NonNullable<NodeConfig['login']>): Promise<TestNode> {
  const dataDir = await tempDir(t, 'dw-node-')
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const config = await readConfig(dataDir)
  await writeConfig(dataDir, { ...config, login })
  return await startTestNode(t, { dataDir })
}

/** POST /auth/login as if from `remoteAddress` (what Fastify reports as request.ip). */
async function login (n: TestNode, password: string, remoteAddress: string) {
  return await n.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'admin', password }, remoteAddress })
}

/** The node token `dw` commands use, over real HTTP. */
async function usersWithNodeToken (n: TestNode): Promise<number> {
  const { token } = JSON.parse(await readFile(join(n.dataDir, NODE_TOKEN_FILE), 'utf8')) as NodeTokenFile
  const res = await fetch(`${n.node.url}/users`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) })
  await res.arrayBuffer()
  return res.status
}

t.test('bad logins for admin from one address lock out that address only; the node token always works', async t => {
  // Only the delays are shortened, to keep the test quick: the counts that lock are the defaults.
  const n = await nodeWith(t, { maxDelayMs: 10 })
  const statuses: number[] = []
  for (let i = 0; i < 11; i++) statuses.push((await login(n, `wrong ${i}`, '127.0.0.1')).statusCode)
  t.same(statuses, [...Array<number>(10).fill(401), 429], 'ten failures, then 127.0.0.1 is locked out of admin')
  const locked = await login(n, ADMIN_PASSWORD, '127.0.0.1')
  t.equal(locked.statusCode, 429, 'even with the right password')
  t.equal(locked.json().error.code, 'TOO_MANY_ATTEMPTS')
  t.ok(Number(locked.headers['retry-after']) > 0, 'with Retry-After')

  const elsewhere = await login(n, ADMIN_PASSWORD, '127.0.0.2')
  t.equal(elsewhere.statusCode, 200, 'admin signs in from 127.0.0.2')
  t.type(elsewhere.json().token, 'string')
  t.equal((await login(n, ADMIN_PASSWORD, '127.0.0.1')).statusCode, 429, 'which does not unlock 127.0.0.1')
  t.equal(await usersWithNodeToken(n), 200, 'the node token works while admin is locked out of 127.0.0.1')
})

t.test('an account locked for every address still yields to the node token', async t => {
  // One failure locks an address out, and two locked-out addresses lock
  // admin for all (the defaults are ten and ten).
  const n = await nodeWith(t, { lockAfter: 1, accountLockClients: 2 })
  for (const address of ['127.0.0.3', '127.0.0.4']) t.equal((await login(n, 'wrong', address)).statusCode, 401)
  const anyone = await login(n, ADMIN_PASSWORD, '127.0.0.5')
  t.equal(anyone.statusCode, 429, 'admin is locked for an address that never failed')
  t.equal(anyone.json().error.code, 'TOO_MANY_ATTEMPTS')
  t.equal(await usersWithNodeToken(n), 200, 'the node token is no login and is never throttled')
})
