import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { startTestNode } from '../helpers/node.ts'

async function upload (url: string, auth: { authorization: string }, files: Array<[string, Uint8Array<ArrayBuffer> | string]>, note?: string): Promise<Response> {
  const form = new FormData()
  if (note !== undefined) form.append('note', note)
  for (const [name, bytes] of files) form.append('file', new Blob([bytes], { type: 'text/csv' }), name)
  return await fetch(url, { method: 'POST', headers: auth, body: form })
}

t.test('versions: upload files, download them byte-identical, presence and integrity', async t => {
  const n = await startTestNode(t)
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'soil' } })).json()
  const big = randomBytes(3 * 1024 * 1024 + 17)
  const res = await upload(`${n.node.url}/datasets/${ds.id}/versions`, n.admin, [['samples.csv', 'a,b\n1,2\n'], ['raw.bin', big]], 'first cut')
  t.equal(res.status, 201)
  const version = await res.json() as any
  t.equal(version.note, 'first cut')
  t.same(version.files.map((f: any) => [f.name, f.size]), [['samples.csv', 8], ['raw.bin', big.length]])
  t.equal(version.files[1].sha256, createHash('sha256').update(big).digest('hex'))

  const got = await fetch(`${n.node.url}/datasets/${ds.id}/versions/${version.id}/files/raw.bin`, { headers: n.admin })
  t.equal(got.status, 200)
  t.equal(got.headers.get('content-length'), String(big.length))
  t.ok(Buffer.from(await got.arrayBuffer()).equals(big), 'byte-identical')

  const second = await upload(`${n.node.url}/datasets/${ds.id}/versions`, n.admin, [['raw.bin', big]])
  t.equal(second.status, 201, 'same content in a new version is stored once')
  const record = (await n.node.api.inject({ url: `/datasets/${ds.id}`, headers: n.admin })).json()
  t.equal(record.versions.length, 2)
  t.equal(record.versions[0].id, version.id, 'ordered by time')

  const missing = await fetch(`${n.node.url}/datasets/${ds.id}/versions/${version.id}/files/nope.csv`, { headers: n.admin })
  t.equal(missing.status, 404)

  // Bytes referenced by metadata but not here (a peer's version, in the mesh): 503 with Retry-After.
  await n.node.blobs.delete(version.files[0].sha256)
  const view = (await n.node.api.inject({ url: `/datasets/${ds.id}`, headers: n.admin })).json()
  t.same(view.versions[0].files.map((f: any) => f.present), [false, true], 'the API says which files are here')
  const away = await fetch(`${n.node.url}/datasets/${ds.id}/versions/${version.id}/files/samples.csv`, { headers: n.admin })
  t.equal(away.status, 503)
  t.ok(Number(away.headers.get('retry-after')) > 0)
})

t.test('uploads with bad file names or no files change nothing', async t => {
  const n = await startTestNode(t)
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'soil' } })).json()
  const before = n.node.docs.seq
  for (const name of ['../../etc/passwd', 'a/b.csv', '..', 'with\u0001control', 'x'.repeat(300)]) {
    const res = await upload(`${n.node.url}/datasets/${ds.id}/versions`, n.admin, [[name, 'data']])
    t.equal(res.status, 400, `refused ${JSON.stringify(name).slice(0, 30)}`)
    t.match(((await res.json()) as any).error.message, /file name/)
  }
  const dup = await upload(`${n.node.url}/datasets/${ds.id}/versions`, n.admin, [['a.csv', '1'], ['a.csv', '2']])
  t.equal(dup.status, 400)
  const form = new FormData()
  form.append('note', 'nothing attached')
  const none = await fetch(`${n.node.url}/datasets/${ds.id}/versions`, { method: 'POST', headers: n.admin, body: form })
  t.equal(none.status, 400)
  t.equal(n.node.docs.seq, before, 'no version was created')
  await n.node.api.inject({ method: 'DELETE', url: `/datasets/${ds.id}`, headers: n.admin })
  const onDeleted = await upload(`${n.node.url}/datasets/${ds.id}/versions`, n.admin, [['a.csv', '1']])
  t.equal(onDeleted.status, 410)
})
