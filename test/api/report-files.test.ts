// Report attachments over real HTTP: POST /reports/{id}/files streams files
// into the blob store and appends them to the report; GET
// /reports/{id}/files/{name} streams them back. Refused uploads change
// nothing and leave no blob behind.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { buildApi } from '../../src/api/server.ts'
import { addMember, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually } from '../helpers/mesh.ts'

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')

async function attach (url: string, auth: { authorization: string }, files: Array<[string, Uint8Array<ArrayBuffer> | string, string?]>, fields: Record<string, string> = {}): Promise<Response> {
  const form = new FormData()
  for (const [name, value] of Object.entries(fields)) form.append(name, value)
  for (const [name, bytes, type] of files) form.append('file', new Blob([bytes], { type: type ?? 'text/plain' }), name)
  return await fetch(url, { method: 'POST', headers: auth, body: form })
}

async function errorOf (res: Response): Promise<{ code: string, message: string }> {
  return ((await res.json()) as { error: { code: string, message: string } }).error
}

/** A member's dataset with one version, and a report of theirs about it. */
async function fixture (n: TestNode, owner: { authorization: string }): Promise<{ reportId: string, base: string }> {
  const api = n.node.api
  const ds = (await api.inject({ method: 'POST', url: '/datasets', headers: owner, payload: { name: 'soil' } })).json()
  const version = await (await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, {
    method: 'POST', headers: owner, body: (() => { const f = new FormData(); f.append('file', new Blob(['a,b\n']), 'soil.csv'); return f })()
  })).json() as { id: string }
  const report = await api.inject({
    method: 'POST',
    url: '/reports',
    headers: owner,
    payload: { reportKind: 'bias', title: 'Sampling bias', subject: { kind: 'dataset', id: ds.id, versionId: version.id }, body: { finding: 'north slope under-sampled' } }
  })
  if (report.statusCode !== 201) throw new Error(`report: ${report.statusCode} ${report.body}`)
  return { reportId: report.json().id, base: `${n.node.url}/reports/${report.json().id as string}` }
}

t.test('report files: attach, list, download byte-identical; duplicates, strangers and bad uploads change nothing', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const alice = await addMember(n, 'alice')
  const bob = await addMember(n, 'bob')
  const { reportId, base } = await fixture(n, alice.headers)
  // The report as read, to show a refused upload changed nothing (the store's
  // sequence is no measure here: this node's own holdings document moves with uploads).
  const state = async (): Promise<string> => (await api.inject({ url: `/reports/${reportId}`, headers: n.admin })).body
  const chart = randomBytes(2 * 1024 * 1024 + 5)
  const notes = 'north slope: 3 of 40 samples\n'

  t.test('the owner attaches two files', async t => {
    const res = await attach(`${base}/files`, alice.headers, [['chart.png', chart, 'image/png'], ['notes.txt', notes]])
    t.equal(res.status, 201)
    const body = await res.json() as any
    t.same(body.files.map((f: any) => [f.name, f.size, f.mediaType, f.sha256]), [
      ['chart.png', chart.length, 'image/png', sha(chart)],
      ['notes.txt', Buffer.byteLength(notes), 'text/plain', sha(notes)]
    ])
    const view = (await api.inject({ url: `/reports/${reportId}`, headers: bob.headers })).json()
    t.same(view.files.map((f: any) => [f.name, f.present]), [['chart.png', true], ['notes.txt', true]], 'every user reads the report with its files, here')
    t.equal(view.updatedByName, 'alice')
  })

  t.test('downloads are byte-identical, with the version files\' headers', async t => {
    const got = await fetch(`${base}/files/chart.png`, { headers: bob.headers })
    t.equal(got.status, 200)
    t.equal(got.headers.get('content-type'), 'image/png')
    t.equal(got.headers.get('content-length'), String(chart.length))
    t.equal(got.headers.get('x-content-sha256'), sha(chart))
    t.equal(got.headers.get('content-disposition'), 'attachment; filename="chart.png"; filename*=UTF-8\'\'chart.png')
    t.equal(got.headers.get('x-content-type-options'), 'nosniff')
    t.ok(Buffer.from(await got.arrayBuffer()).equals(chart), 'byte-identical')
    const text = await fetch(`${base}/files/notes.txt`, { headers: alice.headers })
    t.equal(await text.text(), notes)
    const missing = await fetch(`${base}/files/nope.txt`, { headers: alice.headers })
    t.equal(missing.status, 404)
    t.match(await errorOf(missing), { code: 'NOT_FOUND', message: `report ${reportId} has no file named "nope.txt"` })
  })

  t.test('a name the report already has: 409, nothing attached, the new bytes removed', async t => {
    const before = await state()
    const other = randomBytes(3000)
    const res = await attach(`${base}/files`, alice.headers, [['extra.txt', 'fine on its own'], ['notes.txt', other]])
    t.equal(res.status, 409)
    t.match(await errorOf(res), { code: 'CONFLICT', message: /already has a file named notes\.txt/ })
    t.equal(await state(), before, 'the report did not change')
    t.notOk(await n.node.blobs.has(sha(other)), 'the refused upload\'s bytes are gone')
    t.notOk(await n.node.blobs.has(sha('fine on its own')), 'all of them')
    t.equal(await (await fetch(`${base}/files/notes.txt`, { headers: alice.headers })).text(), notes, 'the attached file is unchanged')
  })

  t.test('another member: 403 before any byte is stored; an admin may attach', async t => {
    const before = await state()
    const bytes = randomBytes(5000)
    const res = await attach(`${base}/files`, bob.headers, [['bob.bin', bytes]])
    t.equal(res.status, 403)
    t.match(await errorOf(res), { code: 'FORBIDDEN', message: 'only the owner of this report or an admin can change it' })
    t.equal(await state(), before)
    t.notOk(await n.node.blobs.has(sha(bytes)))
    const admin = await attach(`${base}/files`, n.admin, [['review.txt', 'checked by the site admin']])
    t.equal(admin.status, 201)
    const view = (await api.inject({ url: `/reports/${reportId}`, headers: alice.headers })).json()
    t.same(view.files.map((f: any) => f.name), ['chart.png', 'notes.txt', 'review.txt'], 'appended in order')
  })

  t.test('bad uploads: 4xx with a clear message, nothing changed', async t => {
    const before = await state()
    const cases: Array<[string, () => Promise<Response>, number, RegExp]> = [
      ['no files', async () => await attach(`${base}/files`, alice.headers, []), 400, /an attachment needs at least one file/],
      ['a form field reports do not take', async () => await attach(`${base}/files`, alice.headers, [['x.txt', 'x']], { note: 'hi' }), 400, /unknown form field "note"/],
      ['two files of one name', async () => await attach(`${base}/files`, alice.headers, [['a.txt', '1'], ['a.txt', '2']]), 400, /two files named a\.txt/],
      ['a path for a name', async () => await attach(`${base}/files`, alice.headers, [['../../etc/passwd', 'x']]), 400, /file name/],
      ['not multipart', async () => await fetch(`${base}/files`, { method: 'POST', headers: { ...alice.headers, 'content-type': 'application/json' }, body: '{"files":[]}' }), 400, /multipart\/form-data/],
      ['truncated multipart', async () => await fetch(`${base}/files`, {
        method: 'POST',
        headers: { ...alice.headers, 'content-type': 'multipart/form-data; boundary=XyZ' },
        body: '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\nunfinished'
      }), 400, /malformed multipart upload/],
      ['an unknown report', async () => await attach(`${n.node.url}/reports/01900000-0000-7000-8000-000000000000/files`, alice.headers, [['x.txt', 'x']]), 404, /not found/],
      ['a dataset id', async () => await attach(`${n.node.url}/reports/not-an-id/files`, alice.headers, [['x.txt', 'x']]), 400, /uuid/]
    ]
    for (const [what, send, status, message] of cases) {
      const res = await send()
      t.equal(res.status, status, what)
      t.match((await errorOf(res)).message, message, what)
    }
    t.equal(await state(), before, 'no record changed')
    for (const bytes of ['x', '1', '2', 'unfinished']) t.notOk(await n.node.blobs.has(sha(bytes)), `no blob kept of ${bytes}`)
  })

  t.test('a file larger than the node accepts: 413, its bytes removed', async t => {
    // The node's limit is 64 GiB; the same routes with a 1 KiB limit, over the node's stores.
    const small = await buildApi({ users: n.node.users, records: n.node.records, files: n.node.files, health: () => ({}) }, { nodeTokenUserId: n.node.config.adminUserId, maxFileBytes: 1024 })
    t.teardown(async () => { await small.close() })
    const boundary = 'dwTestBoundary'
    const big = randomBytes(4096)
    const payload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      big,
      Buffer.from(`\r\n--${boundary}--\r\n`)
    ])
    const before = await state()
    const res = await small.inject({ method: 'POST', url: `/reports/${reportId}/files`, headers: { ...alice.headers, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload })
    t.equal(res.statusCode, 413)
    t.equal(res.json().error.code, 'PAYLOAD_TOO_LARGE')
    t.equal(await state(), before)
    t.notOk(await n.node.blobs.has(sha(big.subarray(0, 1024))), 'the truncated bytes are not kept')
  })

  t.test('a deleted report takes no files; its files are not served', async t => {
    t.equal((await api.inject({ method: 'DELETE', url: `/reports/${reportId}`, headers: alice.headers })).statusCode, 204)
    const res = await attach(`${base}/files`, alice.headers, [['late.txt', 'late']])
    t.equal(res.status, 410)
    t.equal((await fetch(`${base}/files/notes.txt`, { headers: alice.headers })).status, 410)
  })
})

t.test('a report file whose bytes are not here and no peer has them: 503 with Retry-After, as for version files', async t => {
  const n = await startTestNode(t)
  const { base } = await fixture(n, n.admin)
  const bytes = randomBytes(10_000)
  t.equal((await attach(`${base}/files`, n.admin, [['away.bin', bytes]])).status, 201)
  await n.node.blobs.delete(sha(bytes))
  const res = await fetch(`${base}/files/away.bin`, { headers: n.admin })
  t.equal(res.status, 503)
  t.ok(Number(res.headers.get('retry-after')) > 0)
  // Queued as the answer goes out (the queue first checks the store): bounded, not at once.
  await eventually(() => n.node.files.wanted().some(w => w.sha256 === sha(bytes)), 15_000, 'the file queued')
  t.match(n.node.files.wanted(), [{ sha256: sha(bytes), size: bytes.length }], 'queued to fetch when a peer has it')
})
