// A report's attachments travel as version files do: the report syncs, its
// files are blobs the summary names, so another site downloads them (fetched
// from the site that has them on demand) and a pin fetches them in the
// background. Attachments made on two sites are both kept.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { addMember, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

async function attach (n: TestNode, auth: { authorization: string }, reportId: string, files: Array<[string, Uint8Array<ArrayBuffer>]>): Promise<number> {
  const form = new FormData()
  for (const [name, bytes] of files) form.append('file', new Blob([bytes]), name)
  return (await fetch(`${n.node.url}/reports/${reportId}/files`, { method: 'POST', headers: auth, body: form })).status
}

async function download (n: TestNode, reportId: string, name: string): Promise<{ status: number, bytes: Buffer }> {
  const res = await fetch(`${n.node.url}/reports/${reportId}/files/${name}`, { headers: n.admin })
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) }
}

async function fileNames (n: TestNode, reportId: string): Promise<string[]> {
  const res = await n.node.api.inject({ url: `/reports/${reportId}`, headers: n.admin })
  return res.statusCode === 200 ? (res.json().files as Array<{ name: string }>).map(f => f.name) : []
}

t.test('a report file attached on A downloads on B; attachments from both sites are kept', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)
  const alice = await addMember(a, 'alice')
  const ds = (await a.node.api.inject({ method: 'POST', url: '/datasets', headers: alice.headers, payload: { name: 'transects' } })).json()
  const report = (await a.node.api.inject({
    method: 'POST', url: '/reports', headers: alice.headers, payload: { reportKind: 'transformation', title: 'Cleaning', subject: { kind: 'dataset', id: ds.id }, body: { steps: 3 } }
  })).json()
  const big = randomBytes(3 * 1024 * 1024 + 1)
  t.equal(await attach(a, alice.headers, report.id, [['diff.bin', big]]), 201)

  await eventually(async () => (await fileNames(b, report.id)).includes('diff.bin'), 20_000, 'the report with its file on b')
  t.notOk(await b.node.blobs.has(sha(big)), 'b has the record, not yet the bytes')
  const where = async (): Promise<any> => (await b.node.api.inject({ url: `/reports/${report.id as string}/availability`, headers: b.admin })).json()
  // a answers b's who-has once the connection's blob protocol is up: asked again until it does (bounded).
  await eventually(async () => (await where()).files[0]?.peers.includes(a.node.peerId) === true, 15_000, 'b sees that a has the file')
  t.match(await where(), { complete: false, files: [{ name: 'diff.bin', sha256: sha(big), size: big.length, present: false, peers: [a.node.peerId] }] }, 'b: not here, a has it')
  const got = await download(b, report.id, 'diff.bin')
  t.equal(got.status, 200)
  t.ok(got.bytes.equals(big), 'byte-identical on b, fetched from a')
  await eventually(async () => await b.node.blobs.has(sha(big)), 10_000, 'b keeps the fetched copy')
  t.pass('b keeps the fetched copy')
  t.match(await where(), { complete: true, files: [{ name: 'diff.bin', present: true }] }, 'b: here now')

  // An admin on b attaches too while alice attaches on a: both files are kept everywhere.
  const fromA = randomBytes(2000)
  const fromB = randomBytes(3000)
  t.equal(await attach(a, alice.headers, report.id, [['a-notes.bin', fromA]]), 201)
  t.equal(await attach(b, b.admin, report.id, [['b-notes.bin', fromB]]), 201)
  const all = ['a-notes.bin', 'b-notes.bin', 'diff.bin']
  await eventually(async () => JSON.stringify((await fileNames(a, report.id)).sort()) === JSON.stringify(all) &&
    JSON.stringify((await fileNames(b, report.id)).sort()) === JSON.stringify(all), 20_000, 'both attachments on both sites')
  t.same(await fileNames(a, report.id), await fileNames(b, report.id), 'in the same order on both sites')
  t.ok((await download(a, report.id, 'b-notes.bin')).bytes.equals(fromB), 'a downloads the file attached on b')

  // A pin on the report kind fetches report files in the background, as it does version files.
  const pin = await b.node.api.inject({ method: 'POST', url: '/pins', headers: b.admin, payload: { target: 'kind', value: 'report' } })
  t.equal(pin.statusCode, 201)
  await eventually(async () => await b.node.blobs.has(sha(fromA)), 20_000, 'b fetches the pinned report\'s files')
  t.pass('the pinned report\'s files arrive on b')
})
