// A site restored from a backup (or rolled back with its disk) reuses the
// sequence numbers its peers' checkpoints already cover. Before the
// replication log, a peer skipped whatever the restored site wrote next and
// every status screen said the mesh was in sync (issue 9). Now a copied or
// restored data directory starts a new feed epoch, and where the directory
// itself is the same (a VM snapshot rolled back) the peers compare
// replication logs at the start of the next session; either way they fall
// back to a comparison by heads: nothing is skipped, no `dw sync --full`.
import t, { type Test } from 'tap'
import { cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { initNode } from '../../src/node.ts'
import { ADMIN_PASSWORD, TEST_LOGIN, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link, linkThroughProxies } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { restartablePorts } from '../helpers/ports.ts'

async function site (t: Test, join: boolean): Promise<string> {
  const dataDir = await tempDir(t, 'dw-restore-')
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: [`/ip4/127.0.0.1/tcp/${(await restartablePorts(1))[0] as number}`], sync: { minMs: 100, maxMs: 800 }, join })
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
  const epoch = b.node.docs.epoch

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
  const warned: string[] = []
  b = await startWarned(t, dirB, warned)
  t.not(b.node.docs.epoch, epoch, 'restored by hand into a new directory: a new feed epoch')
  t.match(warned, [/new feed epoch/])
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
})

// A VM snapshot rolled back, or a disk image put back: the data directory is
// the same directory (same inode, same birth time) with older contents, so
// the instance stamp sees nothing and the feed keeps its epoch. Only the
// replication logs can tell that A's checkpoint on B is from a future B no
// longer remembers.
t.test('a site rolled back in place (VM snapshot) loses nothing it writes next', async t => {
  const dirA = await site(t, false)
  const dirB = await site(t, true)
  const a = await startTestNode(t, { dataDir: dirA })
  let b = await startTestNode(t, { dataDir: dirB })
  const net = await linkThroughProxies(t, a, b)
  await b.node.sync.syncNow(20_000)
  const epoch = b.node.docs.epoch

  // Stop, snapshot, run on: b1-b3 reach A.
  await b.node.stop()
  const snapshot = await tempDir(t, 'dw-snapshot-')
  await cp(dirB, snapshot, { recursive: true })
  b = await startTestNode(t, { dataDir: dirB })
  const first = [await create(b, 'b1'), await create(b, 'b2'), await create(b, 'b3')]
  await eventually(async () => (await Promise.all(first.map(async id => await has(a, id)))).every(Boolean), 30_000, 'b1-b3 on A')

  // Stop, put the snapshot back into the same directory; A runs on, cut off
  // until B has written again (so A cannot see B's feed go back first).
  net.cut()
  await b.node.stop()
  const inode = (await stat(dirB)).ino
  for (const entry of await readdir(dirB)) await rm(join(dirB, entry), { recursive: true, force: true })
  await cp(snapshot, dirB, { recursive: true })
  t.equal((await stat(dirB)).ino, inode, 'rolled back in place: the directory itself is the same')
  b = await startTestNode(t, { dataDir: dirB })
  t.equal(b.node.docs.epoch, epoch, 'same directory, same epoch: the replication log is what catches this')
  t.notOk(await has(b, first[0] as string), 'b1-b3 are gone from B')
  const second = [await create(b, 'b4'), await create(b, 'b5'), await create(b, 'b6')]
  net.heal()

  // No --full: A takes b4-b6 (reusing the positions of b1-b3 in B's feed), and B gets b1-b3 back.
  const all = [...first, ...second]
  await eventually(async () => {
    const held = await Promise.all([a, b].flatMap(n => all.map(async id => await has(n, id))))
    return held.every(Boolean)
  }, 60_000, 'b1-b6 on both sites')
  t.pass('both sites hold b1-b6')
  const audit = await a.node.api.inject({ method: 'GET', url: '/audit?type=sync.rewind', headers: a.admin })
  t.ok(audit.json().items.some((e: any) => e.details.side === 'puller'), 'A audited that B could not vouch for its checkpoint')
})

/** A node of an initialised directory, with its warnings collected. */
async function startWarned (t: Test, dataDir: string, warnings: string[]): Promise<TestNode> {
  return await startTestNode(t, { dataDir, warn: message => { warnings.push(message) } })
}

// A copy started while the original still runs (the same site twice, with
// one identity): the copy's feed would reuse the original's sequence
// numbers for different changes. It gets an epoch of its own on its first
// start, and only then.
t.test('a copy of a data directory started beside the original starts a new epoch, once', async t => {
  const dirA = await site(t, false)
  const dirB = await site(t, true)
  const a = await startTestNode(t, { dataDir: dirA })
  let b = await startTestNode(t, { dataDir: dirB })
  await link(a, b)
  await b.node.sync.syncNow(20_000)
  const epoch = b.node.docs.epoch
  await b.node.stop()

  // The copy listens on a port of its own; everything else is B's.
  const dirC = join(await tempDir(t, 'dw-copy-'), 'data')
  await cp(dirB, dirC, { recursive: true })
  const config = JSON.parse(await readFile(join(dirC, 'config.json'), 'utf8'))
  config.listen = [`/ip4/127.0.0.1/tcp/${(await restartablePorts(1))[0] as number}`]
  await writeFile(join(dirC, 'config.json'), JSON.stringify(config, null, 2))

  const warned = { b: [] as string[], c: [] as string[] }
  let c: TestNode
  [b, c] = await Promise.all([startWarned(t, dirB, warned.b), startWarned(t, dirC, warned.c)])
  t.equal(b.node.docs.epoch, epoch, 'the original keeps its epoch')
  t.not(c.node.docs.epoch, epoch, 'the copy starts a new one')
  t.same(warned.b, [], 'the original says nothing')
  t.match(warned.c, [/not the directory this node last ran in.*new feed epoch/], 'the copy says why')
  const audit = await c.node.api.inject({ method: 'GET', url: '/audit?type=node.new-epoch', headers: c.admin })
  t.match(audit.json().items, [{ details: { why: 'copied', epoch: c.node.docs.epoch } }])

  // Both serve.
  const fromB = await create(b, 'from-b')
  const fromC = await create(c, 'from-c')
  t.ok(await has(b, fromB) && await has(c, fromC), 'each holds what it wrote')

  // A, linked to both (they share B's identity and peer-book entry), gets
  // what each wrote: B's while the copy is stopped, then the copy's while B is.
  const copyEpoch = c.node.docs.epoch
  await c.node.stop()
  await eventually(async () => await has(a, fromB), 30_000, 'from-b on A')
  await b.node.stop()
  const again: string[] = []
  c = await startWarned(t, dirC, again)
  t.equal(c.node.docs.epoch, copyEpoch, 'restarted, the copy keeps the epoch it began')
  t.same(again, [], 'and says nothing')
  await eventually(async () => await has(a, fromC), 30_000, 'from-c on A')
  t.ok(await has(a, fromB), 'A still holds from-b')
})
