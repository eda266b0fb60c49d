// Two sites linked from config alone: A founds the mesh and names B in
// config.json `peers` (role full); B joins and names A in DW_PEERS. No call
// to /peers: the nodes find each other, B joins the roster, and a record
// written on A reaches B. A announces an extra address, which GET
// /sync/status (what `dw status` prints) lists for other sites to use.
import t from 'tap'
import { initNode, startNode, type StartOptions } from '../../src/node.ts'
import { readConfig, writeConfig } from '../../src/config.ts'
import { ADMIN_PASSWORD, TEST_LOGIN, type TestNode } from '../helpers/node.ts'
import { enrolled, eventually } from '../helpers/mesh.ts'
import { restartablePorts } from '../helpers/ports.ts'
import { tempDir } from '../helpers/tmp.ts'

type T = Parameters<typeof tempDir>[0]

async function initSite (t: T, name: string, port: number, join: boolean): Promise<{ dataDir: string, peerId: string, addr: string }> {
  const dataDir = await tempDir(t, `dw-${name}-`)
  const { peerId } = await initNode({ dataDir, name, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: [`/ip4/127.0.0.1/tcp/${port}`], sync: { minMs: 100, maxMs: 800 }, join, files: { copy: false } })
  return { dataDir, peerId, addr: `/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}` }
}

async function start (t: T, options: StartOptions): Promise<TestNode> {
  const node = await startNode({ peersEnv: '', ...options })
  t.teardown(async () => { await node.stop() })
  const login = async (username: string, password: string): Promise<{ authorization: string }> => {
    const res = await node.api.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })
    if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
    return { authorization: `Bearer ${res.json().token as string}` }
  }
  return { node, dataDir: options.dataDir, login, admin: await login('admin', ADMIN_PASSWORD) }
}

void t.test('two sites linked by config.json peers and DW_PEERS alone, with an announced address', async (t) => {
  const [portA, portB] = await restartablePorts(2) as [number, number]
  const a = await initSite(t, 'site-a', portA, false)
  const b = await initSite(t, 'site-b', portB, true)

  const configA = await readConfig(a.dataDir)
  configA.peers = [{ multiaddr: b.addr, name: 'site-b', role: 'full' }]
  configA.announce = [`/ip4/127.0.0.1/tcp/${portA}`]
  await writeConfig(a.dataDir, configA)

  const warnings: string[] = []
  const [nodeA, nodeB] = await Promise.all([
    start(t, { dataDir: a.dataDir, announce: ['/dns4/site-a.example.org/tcp/14001'], warn: m => { warnings.push(m) } }),
    start(t, { dataDir: b.dataDir, peersEnv: ` ${a.addr}, `, warn: m => { warnings.push(m) } })
  ])

  t.same(nodeA.node.book.get(b.peerId)?.name, 'site-b', 'A trusts B from config.json')
  t.ok(nodeB.node.book.isTrusted(a.peerId), 'B trusts A from DW_PEERS')
  await enrolled([nodeA, nodeB])
  t.same((await nodeB.node.nodes.list()).find(e => e.peerId === b.peerId)?.role, 'full', 'B joined the mesh with the role config.json gave it')

  const created = await nodeA.node.api.inject({ method: 'POST', url: '/datasets', headers: nodeA.admin, payload: { name: 'Rainfall', tags: ['climate'] } })
  t.equal(created.statusCode, 201)
  const id = created.json().id as string
  await eventually(async () => (await nodeB.node.api.inject({ method: 'GET', url: `/datasets/${id}`, headers: nodeB.admin })).statusCode === 200, 20_000, 'the dataset on B')

  const audit = (await nodeA.node.api.inject({ method: 'GET', url: '/audit?limit=1000', headers: nodeA.admin })).json().items as Array<{ type: string, peer?: string, actor?: string, details?: Record<string, unknown> }>
  const mine = audit.filter(e => e.peer === b.peerId && (e.type === 'peer.add' || e.type === 'node.role'))
  t.same(mine.map(e => [e.type, e.actor, e.details?.from]).sort(), [
    ['node.role', configA.adminUserId, 'config.json peers[0]'],
    ['peer.add', configA.adminUserId, 'config.json peers[0]']
  ], 'each step audited, as the local admin, from config.json')

  const status = (await nodeA.node.api.inject({ method: 'GET', url: '/sync/status', headers: nodeA.admin })).json() as { addresses: string[] }
  t.same(status.addresses.sort(), [
    `/dns4/site-a.example.org/tcp/14001/p2p/${a.peerId}`,
    `/ip4/127.0.0.1/tcp/${portA}/p2p/${a.peerId}`
  ], 'announced addresses (config and --announce), and only those, are what other sites are told')
  t.same((await readConfig(a.dataDir)).announce, [`/ip4/127.0.0.1/tcp/${portA}`], '--announce is not written to config.json')
  t.same(warnings, [])

  // A restart adds nothing twice and changes nothing an admin set since.
  const patched = await nodeA.node.api.inject({ method: 'PATCH', url: `/peers/${b.peerId}`, headers: nodeA.admin, payload: { metered: true } })
  t.equal(patched.statusCode, 200)
  await nodeA.node.stop()
  const again = await start(t, { dataDir: a.dataDir })
  t.same(again.node.book.get(b.peerId)?.link, { metered: true }, 'the entry stays as the admin last set it')
  const adds = ((await again.node.api.inject({ method: 'GET', url: '/audit?limit=1000&type=peer.add', headers: again.admin })).json().items as unknown[])
  t.equal(adds.length, 1, 'added once across restarts')
})

void t.test('a bad DW_PEERS entry stops the start with CONFIG_INVALID, naming it', async (t) => {
  const [port] = await restartablePorts(1) as [number]
  const a = await initSite(t, 'site-x', port, false)
  await t.rejects(startNode({ dataDir: a.dataDir, peersEnv: '/ip4/10.0.0.1/tcp/4001' }), { code: 'CONFIG_INVALID', message: /DW_PEERS entry 1: .*\/p2p\/<peerId>/ })
  const config = await readConfig(a.dataDir)
  config.announce = ['/ip4/0.0.0.0/tcp/4001']
  await writeConfig(a.dataDir, config)
  await t.rejects(startNode({ dataDir: a.dataDir, peersEnv: '' }), { code: 'CONFIG_INVALID', message: /announce\[0\]: .*wildcard/ })
  // Nothing was left open: the node starts once the entry is fixed.
  delete config.announce
  await writeConfig(a.dataDir, config)
  const node = await startNode({ dataDir: a.dataDir, peersEnv: '' })
  await node.stop()
  t.pass('starts after the fix')
})
