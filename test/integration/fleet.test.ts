// Node status travels through the mesh: three nodes in a line, A-B-C, A
// and C never linked. A's fleet view shows C (via B) with its lag and a
// verdict; once C stops, A's view marks it within the warning threshold,
// then critical, and `dw fleet` exits non-zero for cron.
import t from 'tap'
import { initNode, startNode } from '../../src/node.ts'
import { readConfig, writeConfig } from '../../src/config.ts'
import type { FleetConfig } from '../../src/fleet/thresholds.ts'
import { ADMIN_PASSWORD, TEST_LOGIN, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { dw } from '../cli/helpers.ts'

// Short, so the test sees the verdicts change; disk checks off, since the
// machine running the test may have little free disk.
const FLEET: FleetConfig = {
  publishEvery: '1s',
  warnAfter: '3s',
  criticalAfter: '8s',
  warnFreeBytes: null,
  warnFreePercent: null,
  criticalFreeBytes: null,
  criticalFreePercent: null
}

async function fleetNode (t: Parameters<typeof startTestNode>[0], name: string, join: boolean): Promise<TestNode> {
  const dataDir = await tempDir(t, 'dw-fleet-')
  await initNode({ dataDir, name, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], sync: { minMs: 100, maxMs: 800 }, join, files: { copy: false } })
  const config = await readConfig(dataDir)
  config.fleet = FLEET
  await writeConfig(dataDir, config)
  return await startTestNode(t, { dataDir })
}

async function fleetOf (n: TestNode): Promise<any[]> {
  const res = await n.node.api.inject({ url: '/fleet', headers: n.admin })
  if (res.statusCode !== 200) throw new Error(`GET /fleet: ${res.statusCode} ${res.body}`)
  return res.json().rows
}

t.test('A sees C through B, with its lag and verdict; C stops and A marks it', async t => {
  const a = await fleetNode(t, 'site-a', false)
  const b = await fleetNode(t, 'site-b', true)
  const c = await fleetNode(t, 'site-c', true)
  await link(a, b)
  await link(b, c)

  let row: any
  await eventually(async () => {
    row = (await fleetOf(a)).find(r => r.peerId === c.node.peerId)
    // Its first status, made as it started, knew no link yet.
    return row?.heard === true && row.peers.length > 0 && row.lagSeconds !== null
  }, 20_000, 'C, with its link to B, in A\'s fleet view')
  t.equal(row.verdict, 'healthy')
  t.equal(row.name, 'site-c')
  t.equal(row.via, b.node.peerId, 'A heard of C through B')
  t.equal(row.viaName, 'site-b')
  t.equal(row.lagSeconds, 0, 'C is caught up with B')
  t.equal(row.lagRecords, 0)
  t.same(row.peers.map((p: any) => p.peer), [b.node.peerId], 'C\'s only link is B')
  t.ok(row.ageSeconds < 3)
  t.notOk(a.node.book.list().some(p => p.peerId === c.node.peerId), 'A and C never linked')

  const table = await dw(['fleet', '--data', a.dataDir])
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /site-c .*as of \d+s ago, via site-b .*healthy/)
  t.match(table.stdout, /site-a .*this node/)
  const asJson = await dw(['fleet', '--data', a.dataDir, '--json'])
  t.equal(asJson.code, 0)
  t.same(JSON.parse(asJson.stdout).map((r: any) => r.name).sort(), ['site-a', 'site-b', 'site-c'])

  const stoppedAt = Date.now()
  await c.node.stop()
  await eventually(async () => {
    row = (await fleetOf(a)).find(r => r.peerId === c.node.peerId)
    return row.verdict !== 'healthy'
  }, 10_000, 'C marked in A\'s fleet view')
  t.equal(row.verdict, 'warning', 'a warning first')
  t.match(row.reasons, [/not heard from/])
  t.ok(Date.now() - stoppedAt < 8_000, 'marked before the critical threshold')
  const others = (await fleetOf(a)).filter(r => r.peerId !== c.node.peerId)
  t.same(others.map(r => r.verdict), ['healthy', 'healthy'], 'A and B stay healthy: B still has its link to A')

  await eventually(async () => (await fleetOf(a)).find(r => r.peerId === c.node.peerId).verdict === 'critical', 15_000, 'C critical')
  const alert = await dw(['fleet', '--data', a.dataDir])
  t.equal(alert.code, 2, 'dw fleet exits 2 when a node is critical')
  t.match(alert.stdout, /site-c .*critical: not heard from/)
})

t.test('GET /fleet is for admins; a node never heard from is critical', async t => {
  const a = await fleetNode(t, 'solo', false)
  const member = await a.node.api.inject({ method: 'POST', url: '/users', headers: a.admin, payload: { username: 'mo', password: 'member password', role: 'member' } })
  t.equal(member.statusCode, 201)
  const res = await a.node.api.inject({ url: '/fleet', headers: await a.login('mo', 'member password') })
  t.equal(res.statusCode, 403)
  // A node in the roster that never said a word.
  const silent = '12D3KooWGzAVeuGRhw8bxK9sEAXsVvd3mhEd1ZTQmn3vFzHnUHzS'
  const put = await a.node.api.inject({ method: 'PUT', url: `/nodes/${silent}`, headers: a.admin, payload: { role: 'contributor', name: 'far-away' } })
  t.equal(put.statusCode, 200, put.body)
  const rows = await fleetOf(a)
  t.same(rows.map(r => [r.name, r.verdict]), [['solo', 'healthy'], ['far-away', 'critical']])
  t.same(rows[1].reasons, ['never heard from'])
})

t.test('a bad fleet setting stops the start with CONFIG_INVALID', async t => {
  const dataDir = await tempDir(t, 'dw-fleet-')
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const config = await readConfig(dataDir)
  config.fleet = { warnAfter: 'soon' }
  await writeConfig(dataDir, config)
  await t.rejects(startNode({ dataDir }), { code: 'CONFIG_INVALID', message: /fleet\.warnAfter/ })
})
