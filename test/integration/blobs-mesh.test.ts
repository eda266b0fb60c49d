// File bytes across the mesh: pinned copies, on-demand fetches through an
// intermediate node, resume after a cut, one transfer for many readers, a
// lying peer caught, and garbage collection.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { stat, writeFile } from 'node:fs/promises'
import { startTestNode, type TestNode } from '../helpers/node.ts'
import { converged, eventually, link, linkThroughProxies } from '../helpers/mesh.ts'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

async function datasetWithFiles (n: TestNode, files: Array<[string, Uint8Array<ArrayBuffer>]>): Promise<{ id: string, versionId: string }> {
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'files', tags: ['field'] } })).json()
  const form = new FormData()
  for (const [name, bytes] of files) form.append('file', new Blob([bytes]), name)
  const res = await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: n.admin, body: form })
  if (res.status !== 201) throw new Error(`upload ${res.status}`)
  return { id: ds.id, versionId: ((await res.json()) as { id: string }).id }
}

async function download (n: TestNode, id: string, versionId: string, name: string): Promise<{ status: number, bytes: Buffer, retryAfter: string | null }> {
  const res = await fetch(`${n.node.url}/datasets/${id}/versions/${versionId}/files/${name}`, { headers: n.admin })
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), retryAfter: res.headers.get('retry-after') }
}

t.test('uploaded on A, pinned on B, fetched on demand on C through B', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const c = await startTestNode(t)
  const big = randomBytes(5 * 1024 * 1024)
  const small = randomBytes(1000)
  const { id, versionId } = await datasetWithFiles(a, [['big.bin', big], ['small.bin', small]])
  const pin = await b.node.api.inject({ method: 'POST', url: '/pins', headers: b.admin, payload: { target: 'dataset', value: id } })
  t.equal(pin.statusCode, 201)
  await link(a, b)
  await link(b, c)
  await eventually(async () => await b.node.blobs.has(sha(big)) && await b.node.blobs.has(sha(small)), 20_000, 'pinned files fetched on b')
  t.pass('b fetched the pinned files in the background')
  await eventually(async () => (await c.node.api.inject({ url: `/datasets/${id}`, headers: c.admin })).statusCode === 200, 15_000, 'metadata on c')
  const before = (await c.node.api.inject({ url: `/datasets/${id}/availability`, headers: c.admin })).json()
  t.equal(before.items[0].complete, false)
  t.ok(before.items[0].files.every((f: any) => f.peers.includes(b.node.peerId)), 'c sees that b has the files')

  // Ten clients ask c for the same missing file at once: one transfer.
  const gets = await Promise.all(Array.from({ length: 10 }, async () => await download(c, id, versionId, 'big.bin')))
  for (const g of gets) t.ok(g.status === 200 && g.bytes.equals(big), 'byte-identical through c')
  // The client has every byte as soon as they arrive; the verified copy lands in the store just after.
  await eventually(async () => await c.node.blobs.has(sha(big)), 10_000, 'c keeps the fetched copy')
  t.pass('c keeps the fetched copy')
  const after = (await c.node.api.inject({ url: `/datasets/${id}/availability`, headers: c.admin })).json()
  t.equal(after.items[0].files.find((f: any) => f.name === 'big.bin').present, true)
})

t.test('one transfer for many concurrent readers', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const bytes = randomBytes(3 * 1024 * 1024)
  const { id, versionId } = await datasetWithFiles(a, [['one.bin', bytes]])
  await link(a, b)
  await eventually(async () => await converged([a, b]), 15_000, 'metadata')
  let served = 0
  const startBytes = await bytesServedBy(a)
  const all = await Promise.all(Array.from({ length: 8 }, async () => await download(b, id, versionId, 'one.bin')))
  for (const g of all) t.ok(g.bytes.equals(bytes))
  served = (await bytesServedBy(a)) - startBytes
  t.equal(served, bytes.length, `a sent the file once (${served} bytes for a ${bytes.length}-byte file)`)
})

async function bytesServedBy (n: TestNode): Promise<number> {
  const status = (await n.node.api.inject({ url: '/sync/status', headers: n.admin })).json()
  return Number(status.blobBytesOut)
}

t.test('no peer has it: 503 with Retry-After, then fetched when a peer appears', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const bytes = randomBytes(10_000)
  const { id, versionId } = await datasetWithFiles(a, [['later.bin', bytes]])
  const link1 = await linkThroughProxies(t, a, b)
  await eventually(async () => await converged([a, b]), 15_000, 'metadata')
  link1.cut()
  await eventually(() => b.node.libp2p.getConnections().length === 0, 10_000, 'cut')
  const away = await download(b, id, versionId, 'later.bin')
  t.equal(away.status, 503)
  t.ok(Number(away.retryAfter) > 0)
  link1.heal()
  await eventually(async () => await b.node.blobs.has(sha(bytes)), 20_000, 'queued fetch completes once a peer is back')
  t.ok((await download(b, id, versionId, 'later.bin')).bytes.equals(bytes))
})

t.test('a transfer cut midway resumes from the bytes it has', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const bytes = randomBytes(24 * 1024 * 1024)
  const { id, versionId } = await datasetWithFiles(a, [['large.bin', bytes]])
  const l = await linkThroughProxies(t, a, b)
  await eventually(async () => await converged([a, b]), 15_000, 'metadata')
  const first = download(b, id, versionId, 'large.bin').catch(() => undefined)
  const partial = `${b.dataDir}/blobs-partial/${sha(bytes)}`
  await eventually(async () => (await stat(partial).then(s => s.size, () => 0)) > 2 * 1024 * 1024, 20_000, 'some bytes arrive')
  l.cut()
  await first
  const kept = await stat(partial).then(s => s.size, () => 0)
  t.ok(kept > 0 && kept < bytes.length, `partial kept across the cut (${kept} bytes)`)
  l.heal()
  await eventually(async () => await b.node.blobs.has(sha(bytes)), 30_000, 'resumed transfer completes')
  await eventually(() => b.node.files.transfers().length === 0, 60_000, 'transfer finished')
  t.ok((await download(b, id, versionId, 'large.bin')).bytes.equals(bytes), 'byte-identical after resume')
})

t.test('a peer that sends the wrong bytes is caught, audited, and another peer is used', async t => {
  // The honest node founds the mesh: it writes before it is linked to anyone.
  const honest = await startTestNode(t)
  const liar = await startTestNode(t)
  const reader = await startTestNode(t)
  const bytes = randomBytes(300_000)
  const { id, versionId } = await datasetWithFiles(honest, [['true.bin', bytes]])
  await link(liar, honest)
  await eventually(async () => await converged([liar, honest]), 15_000, 'metadata to liar')
  // The liar holds a corrupted copy under the right name (disk rot or malice).
  const corrupt = Buffer.from(bytes)
  corrupt[1000] = (corrupt[1000] as number) ^ 0xff
  const path = `${liar.dataDir}/blobs/${sha(bytes).slice(0, 2)}/${sha(bytes).slice(2, 4)}/${sha(bytes)}`
  const { mkdir } = await import('node:fs/promises')
  await mkdir(path.slice(0, path.lastIndexOf('/')), { recursive: true })
  await writeFile(path, corrupt)
  await link(reader, liar)
  await eventually(async () => await converged([reader, liar]), 15_000, 'metadata to reader')
  // Only the liar is in reach: the transfer is aborted, nothing bad becomes visible.
  const lied = await download(reader, id, versionId, 'true.bin').catch(() => undefined)
  t.notOk(lied?.status === 200 && lied.bytes.equals(bytes), 'the liar\'s bytes are not served as the file')
  await eventually(async () => {
    const audit = (await reader.node.api.inject({ url: '/audit?type=blob.mismatch', headers: reader.admin })).json()
    return audit.items.some((e: any) => e.peer === liar.node.peerId)
  }, 10_000, 'the lie audited')
  t.pass('the lie is audited against the liar')
  t.notOk(await reader.node.blobs.has(sha(bytes)), 'nothing unverified in the store')
  t.equal(await stat(`${reader.dataDir}/blobs-partial/${sha(bytes)}`).then(() => true, () => false), false, 'partial data discarded')
  // An honest peer comes into reach: the queued file is fetched from it.
  await link(reader, honest)
  await eventually(async () => await reader.node.blobs.has(sha(bytes)), 20_000, 'fetched from the honest peer')
  t.ok((await download(reader, id, versionId, 'true.bin')).bytes.equals(bytes), 'the right bytes in the end')
})

t.test('garbage collection keeps every referenced blob and removes the rest', async t => {
  const a = await startTestNode(t)
  const keep = randomBytes(5000)
  const drop = randomBytes(6000)
  const { id } = await datasetWithFiles(a, [['keep.bin', keep]])
  const other = await datasetWithFiles(a, [['drop.bin', drop]])
  await a.node.api.inject({ method: 'DELETE', url: `/datasets/${other.id}`, headers: a.admin })
  const orphan = await a.node.blobs.put((async function * () { yield randomBytes(100) })())
  const dry = (await a.node.api.inject({ method: 'POST', url: '/blobs/gc', headers: a.admin, payload: { dryRun: true } })).json()
  t.equal(dry.removed.length, 2)
  t.ok(await a.node.blobs.has(orphan.sha256), 'dry run removes nothing')
  const res = (await a.node.api.inject({ method: 'POST', url: '/blobs/gc', headers: a.admin, payload: {} })).json()
  t.same(res.removed.map((b: any) => b.sha256).sort(), [sha(drop), orphan.sha256].sort())
  t.equal(res.freedBytes, 6100)
  t.ok(await a.node.blobs.has(sha(keep)), 'referenced blob kept')
  t.equal((await a.node.api.inject({ url: `/datasets/${id}`, headers: a.admin })).json().versions[0].files[0].present, true)
  t.equal((await a.node.api.inject({ method: 'POST', url: '/blobs/gc', headers: (await addMemberHeaders(a)) })).statusCode, 403, 'admins only')
})

async function addMemberHeaders (n: TestNode): Promise<{ authorization: string }> {
  await n.node.api.inject({ method: 'POST', url: '/users', headers: n.admin, payload: { username: 'm1', password: 'member password' } })
  return await n.login('m1', 'member password')
}
