// dw backup while the node runs, dw restore into a new directory (issue 9):
// the archive is one consistent snapshot taken while a client writes and a
// sync runs; the restored node holds every record acknowledged before the
// backup began and every file byte-identical, starts a new feed epoch, and
// pulls back from its peer what was written after the backup.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { readdir, readFile, truncate, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { readConfig, writeConfig } from '../../src/config.ts'
import { restoreBackup, verifyBackup } from '../../src/backup/restore.ts'
import { addMember, ADMIN_PASSWORD, startTestNode, type TestNode } from '../helpers/node.ts'
import { addPeer, addressOf, eventually, link } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { startNode } from '../../src/node.ts'

async function create (n: TestNode, name: string): Promise<string> {
  const res = await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name } })
  if (res.statusCode !== 201) throw new Error(`create ${name}: ${res.statusCode} ${res.body}`)
  return res.json().id
}

async function upload (n: TestNode, id: string, files: Array<[string, Buffer]>): Promise<string[]> {
  const form = new FormData()
  for (const [name, bytes] of files) form.append('file', new Blob([new Uint8Array(bytes)]), name)
  const res = await fetch(`${n.node.url}/datasets/${id}/versions`, { method: 'POST', headers: n.admin, body: form })
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`)
  return ((await res.json()) as any).files.map((f: any) => f.sha256)
}

async function download (n: TestNode, path: string): Promise<string> {
  const res = await fetch(`${n.node.url}${path}`, { headers: n.admin })
  if (res.status !== 200) throw new Error(`download ${path}: ${res.status}`)
  return createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex')
}

async function has (n: TestNode, id: string): Promise<boolean> {
  return (await n.node.api.inject({ method: 'GET', url: `/datasets/${id}`, headers: n.admin })).statusCode === 200
}

async function backupTo (n: TestNode, file: string, headers = n.admin): Promise<Response> {
  const res = await fetch(`${n.node.url}/backup`, { headers })
  if (res.status === 200 && res.body !== null) await pipeline(Readable.fromWeb(res.body as any), createWriteStream(file))
  return res
}

t.test('a backup taken while a client writes and a sync runs restores every record and file, and the restored node catches up', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)
  const first = await create(a, 'with files')
  const files: Array<[string, Buffer]> = [['small.csv', Buffer.from('a,b\n1,2\n')], ['big.bin', randomBytes(3 * 1024 * 1024 + 5)], ['empty.txt', Buffer.alloc(0)]]
  const hashes = await upload(a, first, files)
  const acked = [first]
  for (let i = 0; i < 30; i++) acked.push(await create(a, `before ${i}`))

  // A client keeps writing on A, and B writes too (so a sync runs), while the backup streams.
  let writing = true
  const during: string[] = []
  const writer = (async () => {
    for (let i = 0; writing && i < 500; i++) during.push(await create(a, `during ${i}`))
  })()
  const fromB = (async () => {
    for (let i = 0; writing && i < 200; i++) await create(b, `on b ${i}`)
  })()
  const dir = await tempDir(t, 'dw-backups-')
  const archive = join(dir, 'a.tar')
  const res = await backupTo(a, archive)
  writing = false
  await Promise.all([writer, fromB])
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'application/x-tar')
  t.match(res.headers.get('content-disposition'), /attachment; filename="dw-backup-.+\.tar"/)

  const verified = await verifyBackup(archive)
  t.equal(verified.manifest.peerId, a.node.peerId)
  t.equal(verified.blobs, 3, 'every blob is in the archive')
  t.ok(verified.records >= acked.length, 'at least the records acknowledged before the backup')
  const status = (await a.node.api.inject({ method: 'GET', url: '/backup/status', headers: a.admin })).json()
  t.equal(status.last?.ok, true, 'the backup is recorded as the last one')

  // After the backup, A writes more, and B gets it: what B holds is what the restored A pulls back.
  const after = [await create(a, 'after 1'), await create(a, 'after 2')]
  await eventually(async () => (await Promise.all(after.map(async id => await has(b, id)))).every(Boolean), 30_000, 'the writes after the backup reach B')
  const oldEpoch = a.node.docs.epoch
  await a.node.stop()

  const restoredDir = join(await tempDir(t, 'dw-restored-'), 'site-a')
  const restored = await restoreBackup(archive, restoredDir)
  t.equal(restored.missingBlobs, 0)
  t.equal(restored.records, verified.records)
  const node = await startNode({ dataDir: restoredDir, warn: () => {} })
  t.teardown(async () => { await node.stop() })
  const r: TestNode = { node, dataDir: restoredDir, admin: a.admin, login: a.login }
  r.admin = await (async () => {
    const login = await node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'admin', password: ADMIN_PASSWORD } })
    return { authorization: `Bearer ${login.json().token as string}` }
  })()
  t.equal(node.peerId, a.node.peerId, 'the same site')
  t.not(node.docs.epoch, oldEpoch, 'a new feed epoch')
  t.ok((await node.audit.list({ type: 'node.new-epoch', limit: 10 })).length > 0, 'the new epoch is audited')
  for (const id of acked) t.ok(await has(r, id), `record ${id} acknowledged before the backup is restored`)
  const version = (await node.api.inject({ method: 'GET', url: `/datasets/${first}`, headers: r.admin })).json().versions[0]
  for (const [i, [name]] of files.entries()) {
    t.equal(await download(r, `/datasets/${first}/versions/${version.id as string}/files/${name}`), hashes[i], `${name} is byte-identical`)
  }

  // The restored node pulls back from B everything written since the backup, with no --full.
  await addPeer(b, addressOf(r))
  await addPeer(r, addressOf(b))
  await eventually(async () => (await Promise.all([...after, ...during].map(async id => await has(r, id)))).every(Boolean), 60_000, 'the restored node pulls back what was written after the backup')
  t.pass('the restored node holds every record, including those written after its backup')
})

t.test('bad backups and restores are refused clearly and change nothing', async t => {
  const a = await startTestNode(t)
  await create(a, 'one')
  const member = await addMember(a, 'maria')
  const dir = await tempDir(t, 'dw-backups-')
  t.equal((await backupTo(a, join(dir, 'm.tar'), member.headers)).status, 403, 'members cannot take backups')
  t.equal((await fetch(`${a.node.url}/backup?files=everything`, { headers: a.admin })).status, 400)

  const archive = join(dir, 'a.tar')
  await backupTo(a, archive)
  const notEmpty = await tempDir(t, 'dw-occupied-')
  await writeFile(join(notEmpty, 'keep.txt'), 'mine')
  await t.rejects(restoreBackup(archive, notEmpty), { code: 'ALREADY_INITIALISED' })
  t.same(await readdir(notEmpty), ['keep.txt'], 'a restore never touches a directory that holds anything')

  const cut = join(dir, 'cut.tar')
  await writeFile(cut, await readFile(archive))
  await truncate(cut, (await stat(cut)).size - 2048)
  await t.rejects(verifyBackup(cut), { code: 'INVALID_INPUT', message: /not a complete dw backup/ })
  const target = join(await tempDir(t, 'dw-restored-'), 'x')
  await t.rejects(restoreBackup(cut, target), { code: 'INVALID_INPUT' })
  t.same(await readdir(target), [], 'a failed restore leaves nothing behind')

  const foreign = join(dir, 'foreign.tar')
  await writeFile(foreign, randomBytes(4096))
  await t.rejects(verifyBackup(foreign), { code: 'INVALID_INPUT' })
})

t.test('scheduled backups: written, verified, pruned to keep, and shown in the status', async t => {
  const a = await startTestNode(t)
  await create(a, 'scheduled')
  await a.node.stop()
  const to = join(await tempDir(t, 'dw-scheduled-'), 'backups')
  const config = await readConfig(a.dataDir)
  config.backup = { every: '1s', keep: 2, to }
  await writeConfig(a.dataDir, config)
  const node = await startNode({ dataDir: a.dataDir })
  t.teardown(async () => { await node.stop() })
  await eventually(async () => (await node.audit.list({ type: 'node.backup', limit: 10 })).length >= 3, 60_000, 'three scheduled backups')
  await node.backups.stop()
  const archives = (await readdir(to)).filter(n => n.endsWith('.tar'))
  t.equal(archives.length, 2, 'only the newest two are kept')
  for (const name of archives) t.equal((await verifyBackup(join(to, name))).records >= 1, true, `${name} verifies`)
  const status = await node.backups.status()
  t.equal(status.last?.ok, true)
  t.equal(status.last?.trigger, 'schedule')

  config.backup = { every: 'daily', keep: 2, to }
  await writeConfig(a.dataDir, config)
  await node.stop()
  await t.rejects(startNode({ dataDir: a.dataDir }), { code: 'CONFIG_INVALID', message: /backup\.every/ })
})
