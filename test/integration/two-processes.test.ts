// The acceptance scenario, as an admin would run it: two nodes made with
// `dw init`, run as separate `dw start` processes, introduced with
// `dw peer add`, then edited while never up at the same time. Once both are
// up again they converge without anyone asking.
import { join } from 'node:path'
import t from 'tap'
import { ADMIN_PASSWORD, dw, dwJson, rosterReached, started, type Started } from '../cli/helpers.ts'
import { eventually } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { restartablePorts } from '../helpers/ports.ts'

/** The node's HTTP API as the admin, signed in with the password given to init. */
async function signIn (node: Started): Promise<(method: string, path: string, body?: object) => Promise<any>> {
  const call = async (token: string | undefined, method: string, path: string, body?: object): Promise<any> => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' }
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    const res = await fetch(node.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
    const text = await res.text()
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
    return text === '' ? undefined : JSON.parse(text)
  }
  const { token } = await call(undefined, 'POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD })
  return async (method, path, body) => await call(token as string, method, path, body)
}

type Api = Awaited<ReturnType<typeof signIn>>

async function datasetNames (api: Api): Promise<string[]> {
  const { items } = await api('GET', '/datasets?limit=1000')
  return (items as Array<{ id: string, name: string }>).map(d => `${d.id} ${d.name}`).sort()
}

async function peerConnected (api: Api): Promise<boolean> {
  const { peers } = await api('GET', '/sync/status')
  return peers.length === 1 && peers[0].connected === true
}

async function stop (node: Started): Promise<number | null> {
  node.child.kill('SIGTERM')
  return await Promise.race([node.exited, new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('node did not stop within 15 s')), 15_000).unref())])
}

void t.test('two dw processes, never up together, converge once both run', async (t) => {
  const root = await tempDir(t, 'dw-two-')
  const [portA, portB] = await restartablePorts(2)
  const env = { env: { DW_ADMIN_PASSWORD: ADMIN_PASSWORD } }
  const init = async (name: string, port: number | undefined, extra: string[] = []): Promise<{ data: string, addr: string }> => {
    const data = join(root, name)
    const made = await dwJson(['init', '--data', data, '--name', name, '--http', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${port}`, ...extra], env)
    return { data, addr: made.addresses[0] as string }
  }
  // Alpha founds the mesh; beta joins it once alpha, a full node, adds it.
  const a = await init('alpha', portA)
  const b = await init('beta', portB, ['--join'])

  let nodeA = await started(t, a.data)
  let nodeB = await started(t, b.data)
  t.equal(a.addr, (await dwJson(['status', '--data', a.data])).sync.addresses[0], 'init printed the address the node listens on')
  for (const [self, other, name, role] of [[a, b, 'beta', ['--role', 'full']], [b, a, 'alpha', []]] as const) {
    const run = await dw(['peer', 'add', other.addr, '--name', name, ...role, '--data', self.data])
    t.equal(run.code, 0, `dw peer add ${name} ${run.stderr}`)
  }
  let apiA = await signIn(nodeA)
  let apiB = await signIn(nodeB)
  await eventually(async () => await peerConnected(apiA) && await peerConnected(apiB), 20_000, 'the two nodes to connect')
  t.pass('connected')
  // B writes later, alone: it must hold the roster naming it first.
  t.equal(await rosterReached(b.data), 'full', 'beta holds the roster naming it')

  t.equal(await stop(nodeB), 0, 'B stops cleanly')
  for (let i = 0; i < 5; i++) await apiA('POST', '/datasets', { name: `from alpha ${i}` })
  t.equal(await stop(nodeA), 0, 'A stops cleanly')

  nodeB = await started(t, b.data)
  apiB = await signIn(nodeB)
  for (let i = 0; i < 5; i++) await apiB('POST', '/datasets', { name: `from beta ${i}` })
  nodeA = await started(t, a.data)
  apiA = await signIn(nodeA)

  let seen: string[][] = []
  await eventually(async () => {
    seen = [await datasetNames(apiA), await datasetNames(apiB)]
    return seen[0]?.length === 10 && JSON.stringify(seen[0]) === JSON.stringify(seen[1])
  }, 30_000, 'both nodes to list the same 10 datasets').catch((err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(seen)}`) })
  const names = (seen[0] ?? []).map(line => line.slice(line.indexOf(' ') + 1)).sort()
  t.same(names, [0, 1, 2, 3, 4].map(i => `from alpha ${i}`).concat([0, 1, 2, 3, 4].map(i => `from beta ${i}`)), 'every dataset from both sides, same ids and names on both')

  const sync = await dw(['sync', '--data', a.data])
  t.equal(sync.code, 0, `dw sync --data A exits 0 ${sync.stderr}`)
  t.match(sync.stdout, /beta\s+ok\s+\d+\s+yes/, 'beta synced and caught up')
  const peers = await dwJson(['peer', 'ls', '--data', a.data])
  t.equal(peers.length, 1)
  t.match(peers[0], { peerId: nodeB.peerId, name: 'beta', connected: true, lastSyncAt: String }, 'dw peer ls: beta connected, with a last sync time')
  t.ok(peers[0].bytesIn > 0 && peers[0].bytesOut > 0, 'bytes moved both ways')
  const sessions = await dwJson(['audit', '--type', 'sync.session', '--peer', nodeB.peerId, '--data', a.data])
  t.ok(sessions.length > 0, 'sync sessions are in the audit log')
})
