// A site restored from a backup (or rolled back with its disk) reuses the
// sequence numbers its peers' checkpoints already cover. Before the
// replication log, a peer skipped whatever the restored site wrote next and
// every status screen said the mesh was in sync (issue 9). Now the peers
// compare logs at the start of the next session and fall back to a
// comparison by heads: nothing is skipped, no `dw sync --full` needed.
import t, { type Test } from 'tap'
import { cp, rm } from 'node:fs/promises'
import { initNode } from '../../src/node.ts'
import { ADMIN_PASSWORD, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { restartablePorts } from '../helpers/ports.ts'

async function site (t: Test, join: boolean): Promise<string> {
  const dataDir = await tempDir(t, 'dw-restore-')
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, http: { host: '127.0.0.1', port: 0 }, listen: [`/ip4/127.0.0.1/tcp/${(await restartablePorts(1))[0] as number}`], sync: { minMs: 100, maxMs: 800 }, join })
  return dataDir
}

async function create (n: TestNode, name: string): Promise<string> {
  const res = await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name } })
  if (res.statusCode !== 201) throw new Error(`create ${name}: ${res.statusCode} ${res.body}`)
  return res.json().id
}

async function has (n: TestNode, id: string): Promise<boolean> {
  return (await n.node.api.inject({ method: 'GET', url: `/datasets/${id}`, headers: n.admin })).statusCode === 200
}

t.test('a site restored from a backup loses nothing it writes next', async t => {
  const dirA = await site(t, false)
  const dirB = await site(t, true)
  let a = await startTestNode(t, { dataDir: dirA })
  let b = await startTestNode(t, { dataDir: dirB })
  await link(a, b)
  await b.node.sync.syncNow(20_000)

  // 1. B stopped, its data directory copied, B started again.
  await b.node.stop()
  const backup = await tempDir(t, 'dw-backup-')
  await cp(dirB, backup, { recursive: true })
  b = await startTestNode(t, { dataDir: dirB })

  // 2. B creates three datasets; they reach A.
  const first = [await create(b, 'b1'), await create(b, 'b2'), await create(b, 'b3')]
  await eventually(async () => (await Promise.all(first.map(async id => await has(a, id)))).every(Boolean), 30_000, 'b1-b3 on A')

  // 3. Both stop; B's copy is restored; B starts alone and creates three more.
  await a.node.stop()
  await b.node.stop()
  await rm(dirB, { recursive: true, force: true })
  await cp(backup, dirB, { recursive: true })
  b = await startTestNode(t, { dataDir: dirB })
  const second = [await create(b, 'b4'), await create(b, 'b5'), await create(b, 'b6')]

  // 4. A starts: no --full, yet both end with all six (b1-b3 come back to B from A).
  a = await startTestNode(t, { dataDir: dirA })
  const all = [...first, ...second]
  await eventually(async () => {
    const onA = await Promise.all(all.map(async id => await has(a, id)))
    const onB = await Promise.all(all.map(async id => await has(b, id)))
    return [...onA, ...onB].every(Boolean)
  }, 60_000, 'all six datasets on both sites')
  t.pass('both sites hold b1-b6')

  // The status never claims caught-up while records are missing: once it says so, they are all there.
  const results = await a.node.sync.syncNow(20_000)
  t.match(results, [{ ok: true }])
  const peer = a.node.sync.status()[0]
  t.equal(peer?.behindPeer, 0)
  const audit = await a.node.api.inject({ method: 'GET', url: '/audit?type=sync.rewind', headers: a.admin })
  t.ok(audit.json().items.some((e: any) => e.details.side === 'puller'), 'A audited that its checkpoint was not trusted')
})
