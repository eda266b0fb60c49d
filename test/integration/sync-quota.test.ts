// A trusted peer floods the mesh with records. Past the receiver's quota
// the peer's sessions end, it is shown as throttled and audited, and the
// receiver keeps serving; honest traffic within the quota flows as before.
import t from 'tap'
import { initNode } from '../../src/node.ts'
import { readConfig, writeConfig } from '../../src/config.ts'
import { newId } from '../../src/crdt/keys.ts'
import { initDataset } from '../../src/crdt/records/dataset.ts'
import { ADMIN_PASSWORD, TEST_LOGIN, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'

async function api (n: TestNode, method: string, url: string, payload?: object): Promise<{ status: number, body: any }> {
  const res = await n.node.api.inject({ method: method as 'GET', url, headers: n.admin, ...(payload !== undefined ? { payload } : {}) })
  return { status: res.statusCode, body: res.body === '' ? undefined : res.json() }
}

t.test('a flood of new records stops at the hourly quota', async t => {
  const flooder = await startTestNode(t)
  const dataDir = await tempDir(t, 'dw-quota-')
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], sync: { minMs: 100, maxMs: 800 }, join: true })
  const config = await readConfig(dataDir)
  config.limits = { sync: { perHour: { newDocuments: 150 } } }
  await writeConfig(dataDir, config)
  const receiver = await startTestNode(t, { dataDir })
  await link(flooder, receiver)

  const admin = flooder.node.trust.localAdminId
  const at = new Date().toISOString()
  for (let i = 0; i < 400; i++) {
    const id = newId()
    await flooder.node.docs.create(`dataset/${id}`, d => initDataset(d, 'dataset', id, { name: `flood ${i}` }, { userId: admin, at }), { author: admin })
  }
  await eventually(async () => (await api(receiver, 'GET', '/peers')).body.items.some((p: any) => p.throttled !== undefined), 60_000, 'the flooder shown as throttled')
  const peer = (await api(receiver, 'GET', '/peers')).body.items.find((p: any) => p.peerId === flooder.node.peerId)
  t.match(peer.throttled, { reason: /hourly quota of 150 new documents/, until: /^\d{4}-/ })
  const audited = (await api(receiver, 'GET', '/audit?type=sync.throttled')).body.items
  t.ok(audited.some((e: any) => e.peer === flooder.node.peerId), 'audited')
  let received = 0
  for await (const _ of receiver.node.docs.scan('dataset/')) received++
  t.ok(received < 400, `the receiver took ${received} of the 400 records, not all`)

  // It keeps serving its own users.
  const made = await api(receiver, 'POST', '/datasets', { name: 'local work' })
  t.equal(made.status, 201)
  t.equal((await api(receiver, 'GET', `/datasets/${made.body.id as string}`)).body.name, 'local work')
  const sync = await receiver.node.sync.syncNow(5_000)
  t.match(sync[0], { ok: false, error: /hourly quota/ }, 'dw sync says why')
})
