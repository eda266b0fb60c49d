// Upgrading a site of the previous version: its history has no claims and
// no signatures, and its bootstrap admin a random id. `dw node found
// --adopt` founds the mesh on it and vouches for that history, so the
// sites that join take it; nobody else can slip unsigned changes in.
import { join } from 'node:path'
import t from 'tap'
import { newId } from '../../src/crdt/keys.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { initUser } from '../../src/crdt/records/user.ts'
import { initDataset } from '../../src/crdt/records/dataset.ts'
import { hashPassword } from '../../src/auth/passwords.ts'
import { openDb } from '../../src/db.ts'
import { writeConfig } from '../../src/config.ts'
import { loadOrCreateIdentity } from '../../src/peer/identity.ts'
import { ADMIN_PASSWORD, startTestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'

/** A data directory as the previous version left it: unsigned documents, a bootstrap admin with a random id. */
async function previousVersionSite (dataDir: string): Promise<{ datasets: string[], alice: string }> {
  await loadOrCreateIdentity(dataDir)
  const db = await openDb(join(dataDir, 'db'))
  const docs = await DocStore.open(db, { summarise })
  const adminId = newId()
  const at = new Date().toISOString()
  const fast = { ln: 10, r: 8, p: 1 }
  await docs.create(`user/${adminId}`, d => initUser(d, adminId, { username: 'admin', role: 'admin', passwordHash: '' }, { userId: adminId, at }), { local: true })
  const adminHash = await hashPassword(ADMIN_PASSWORD, fast)
  await docs.change(`user/${adminId}`, d => { d.passwordHash = adminHash })
  const alice = newId()
  const aliceHash = await hashPassword('alice password', fast)
  await docs.create(`user/${alice}`, d => initUser(d, alice, { username: 'alice', role: 'member', passwordHash: aliceHash }, { userId: adminId, at }))
  const datasets: string[] = []
  for (const name of ['old rainfall', 'old soil', 'old tides']) {
    const id = newId()
    await docs.create(`dataset/${id}`, d => initDataset(d, 'dataset', id, { name }, { userId: alice, at }))
    datasets.push(id)
  }
  await docs.flush()
  await db.close()
  await writeConfig(dataDir, { version: 1, name: 'old-site', http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], blobs: { type: 'fs' }, adminUserId: adminId, sync: { minMs: 100, maxMs: 800 } })
  return { datasets, alice }
}

t.test('a previous-version site founds the mesh on its history, and a new site takes it', async t => {
  const dataDir = await tempDir(t, 'dw-old-')
  const { datasets, alice } = await previousVersionSite(dataDir)
  const a = await startTestNode(t, { dataDir })
  t.pass('the old bootstrap admin still signs in (made again under the id derived from the peer id)')
  t.equal(a.node.config.adminUserId, a.node.trust.localAdminId)

  const refusedBefore = await a.node.api.inject({ method: 'PATCH', url: `/datasets/${datasets[0] as string}`, headers: a.admin, payload: { name: 'edited before founding' } })
  t.equal(refusedBefore.statusCode, 403, 'no writes before the node belongs to a mesh')

  const founded = await a.node.api.inject({ method: 'POST', url: '/nodes/found', headers: a.admin, payload: { adopt: true } })
  t.equal(founded.statusCode, 201)
  t.equal(founded.json().attested, 4, 'the changes of the replicated documents are attested (alice, three datasets; the local admin never leaves)')
  t.equal((await a.node.api.inject({ method: 'POST', url: '/nodes/found', headers: a.admin, payload: {} })).statusCode, 409, 'founding twice is refused')

  const b = await startTestNode(t, { join: true })
  await link(a, b)
  for (const id of datasets) {
    await eventually(async () => (await b.node.api.inject({ url: `/datasets/${id}`, headers: b.admin })).statusCode === 200, 20_000, `legacy dataset ${id} reaches the new site`)
  }
  await eventually(async () => (await b.node.api.inject({ url: `/users/${alice}`, headers: b.admin })).statusCode === 200, 20_000, 'legacy account reaches the new site')
  t.equal((await b.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'alice', password: 'alice password' } })).statusCode, 200, 'alice signs in on the new site')

  const edited = await a.node.api.inject({ method: 'PATCH', url: `/datasets/${datasets[1] as string}`, headers: a.admin, payload: { description: 'signed now' } })
  t.equal(edited.statusCode, 200)
  await eventually(async () => (await b.node.api.inject({ url: `/datasets/${datasets[1] as string}`, headers: b.admin })).json().description === 'signed now', 20_000, 'a signed edit on top of adopted history arrives')
  const refused = (await b.node.api.inject({ url: '/audit?type=sync.refused', headers: b.admin })).json().items
  t.same(refused, [], 'nothing refused')
})
