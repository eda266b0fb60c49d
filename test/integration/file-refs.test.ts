// File references as an attacker uses them (issue 12, item 5): a declared
// size that is not the file's, a media type carrying a header line, a
// member's HTML file, a report naming any sha256 to learn whether this node
// holds it, and a peer's record naming a deleted record's blob to have it
// served again. Each attack is refused or defused, through the HTTP API and
// through a peer.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import * as A from '@automerge/automerge'
import type { ChangeAdmission } from '../../src/crdt/doc-store.ts'
import { packSigs } from '../../src/crdt/sig-entries.ts'
import { encodeClaims } from '../../src/trust/claims.ts'
import { ChangeSigner } from '../../src/trust/signatures.ts'
import { docKey } from '../../src/crdt/keys.ts'
import { addVersion, type FileRef } from '../../src/crdt/records/versions.ts'
import { contentDisposition } from '../../src/api/routes/versions.ts'
import { fileRefProblem, isMediaType } from '../../src/trust/file-refs.ts'
import type { Principal } from '../../src/warehouse/principal.ts'
import { addMember, startTestNode, type TestNode } from '../helpers/node.ts'
import { converged, eventually, link } from '../helpers/mesh.ts'
import { claimsOf, docOf, forge, item, sync, trustNode } from '../helpers/trust-fixture.ts'

type Headers = { authorization: string }
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const CRLF_TYPE = 'text/html\r\nSet-Cookie: stolen=1'

async function api (n: TestNode, method: string, url: string, payload?: object, headers: Headers = n.admin): Promise<{ status: number, body: any }> {
  const res = await n.node.api.inject({ method: method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) })
  return { status: res.statusCode, body: res.body === '' ? undefined : res.json() }
}

async function dataset (n: TestNode, headers: Headers = n.admin, name = 'files'): Promise<string> {
  const res = await api(n, 'POST', '/datasets', { name }, headers)
  if (res.status !== 201) throw new Error(`create dataset: ${res.status}`)
  return res.body.id
}

async function upload (n: TestNode, id: string, files: Array<[string, Uint8Array<ArrayBuffer>, string?]>, headers: Headers = n.admin): Promise<Response> {
  const form = new FormData()
  for (const [name, bytes, type] of files) form.append('file', new Blob([bytes], type !== undefined ? { type } : {}), name)
  return await fetch(`${n.node.url}/datasets/${id}/versions`, { method: 'POST', headers, body: form })
}

async function uploaded (n: TestNode, id: string, files: Array<[string, Uint8Array<ArrayBuffer>, string?]>, headers: Headers = n.admin): Promise<{ versionId: string, files: FileRef[] }> {
  const res = await upload(n, id, files, headers)
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`)
  const v = await res.json() as { id: string, files: FileRef[] }
  return { versionId: v.id, files: v.files }
}

async function download (n: TestNode, id: string, versionId: string, name: string, headers: Headers = n.admin): Promise<{ status: number, headers: globalThis.Headers, bytes: Buffer, error?: { code: string, message: string } }> {
  const res = await fetch(`${n.node.url}/datasets/${id}/versions/${versionId}/files/${encodeURIComponent(name)}`, { headers })
  const bytes = Buffer.from(await res.arrayBuffer())
  const error = res.headers.get('content-type')?.startsWith('application/json') === true && res.status >= 400 ? JSON.parse(bytes.toString()).error : undefined
  return { status: res.status, headers: res.headers, bytes, error }
}

function adminOf (n: TestNode): Principal {
  return { userId: n.node.config.adminUserId, username: 'admin', role: 'admin' }
}

/**
 * A version written straight into the record, past the HTTP API's checks:
 * what a hostile node with a legitimate account writes into its own store
 * and signs. The permission rules still judge it.
 */
async function plantVersion (n: TestNode, id: string, files: FileRef[]): Promise<string> {
  return (await n.node.records.addVersion(adminOf(n), 'dataset', id, files, 'planted')).id
}

/** Runs `fn` with a node whose admission takes every change: how a record written before today's rules existed got in. */
async function beforeTheRules<T> (n: TestNode, fn: () => Promise<T>): Promise<T> {
  const gate = n.node.trust
  const permissive: ChangeAdmission = {
    claims: async author => await gate.claims(author),
    sign: hash => gate.sign(hash),
    referenceRank: key => gate.referenceRank(key),
    firstKeys: () => gate.firstKeys(),
    judge: async () => ({ ok: true })
  }
  n.node.docs.admitWith(permissive)
  try {
    return await fn()
  } finally {
    n.node.docs.admitWith(gate)
  }
}

t.test('media types and sizes: what a file reference may declare', async t => {
  for (const good of ['text/csv', 'application/vnd.apache.parquet', 'text/plain; charset=utf-8', 'text/plain;charset="utf-8"', 'application/x-ndjson', 'image/svg+xml']) {
    t.ok(isMediaType(good), good)
  }
  for (const bad of [CRLF_TYPE, 'text/html\n', 'text/html\u0000', 'text', '/csv', 'text/', 'text/csv;', 'text/csv; charset', 'text/c sv', 'tëxt/csv', `text/${'x'.repeat(250)}`, '', 42, null]) {
    t.notOk(isMediaType(bad), JSON.stringify(bad))
  }
  const ref = { name: 'a.csv', sha256: 'a'.repeat(64), size: 1, mediaType: 'text/csv' }
  t.equal(fileRefProblem(ref), undefined)
  for (const size of [-1, 1.5, 2 ** 53, Number.NaN, '12']) t.match(fileRefProblem({ ...ref, size }), /size must be a whole number/, `size ${String(size)}`)
  t.match(fileRefProblem({ ...ref, mediaType: CRLF_TYPE }), /mediaType must be/)
})

t.test('the sync path: a peer\'s version or report declaring a malformed size or media type is refused', async t => {
  const F = await trustNode(t, 'F')
  const C = await trustNode(t, 'C')
  await F.core.nodes.found('F')
  await F.core.nodes.setRole(F.admin, C.peerId, 'full', 'C')
  const view = await F.core.users.create(F.admin, { username: 'alice', password: 'correct horse battery', role: 'member' })
  const alice: Principal = { userId: String(view.id), username: 'alice', role: 'member' }
  const ds = docKey('dataset', String((await F.core.records.create(alice, 'dataset', { name: 'alice data' })).id))
  await sync(F, C)
  const good: FileRef = { name: 'a.csv', sha256: 'a'.repeat(64), size: 10, mediaType: 'text/csv' }

  const cases: Array<[string, FileRef | Record<string, unknown>, RegExp]> = [
    ['a media type with CR/LF', { ...good, mediaType: CRLF_TYPE }, /mediaType must be/],
    ['a media type that is not type/subtype', { ...good, mediaType: 'html' }, /mediaType must be/],
    ['a negative size', { ...good, size: -5 }, /size must be/],
    ['a fractional size', { ...good, size: 2.5 }, /size must be/],
    ['a size past 2^53', { ...good, size: 2 ** 60 }, /size must be/],
    ['a size that is text', { ...good, size: '10' }, /size must be/]
  ]
  for (const [what, ref, reason] of cases) {
    // Made by hand, not with forge(): Automerge cannot decode a change holding an integer past 2^53 back into JavaScript.
    const base = await docOf(F, ds)
    const made = A.change(base, { message: encodeClaims(await claimsOf(F, alice.userId)), time: Math.floor(Date.now() / 1000) }, d => {
      addVersion(d, [ref as FileRef], what, { userId: alice.userId, at: new Date().toISOString() })
    })
    const [hash] = A.getHeads(made) as [string]
    const bytes = A.getLastLocalChange(made) as Uint8Array
    const result = await C.admit([{ key: ds, bytes, sigs: packSigs([[hash, new ChangeSigner(F.key).sign(hash)]]) }])
    t.match(result.refused[0]?.reason, reason, `${what}: refused`)
  }
  t.same((await C.core.records.get('dataset', ds.slice('dataset/'.length))).versions, [], 'no version got in')

  // A report's files are judged the same way, at creation.
  const report = docKey('report', '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b')
  const { change } = forge({
    key: report,
    message: await claimsOf(F, alice.userId),
    signer: F.key,
    fn: d => {
      const at = new Date().toISOString()
      Object.assign(d, { kind: 'report', id: report.slice('report/'.length), createdAt: at, createdBy: alice.userId, updatedAt: at, updatedBy: alice.userId, deletions: {}, owner: alice.userId, reportKind: 'bias', title: 'r', subject: { kind: 'dataset', id: ds.slice(8) }, body: {} })
      d.files = [{ ...good, mediaType: CRLF_TYPE }]
    }
  })
  t.match((await C.admit([item(change)])).refused[0]?.reason, /files: .*mediaType must be/, 'a report naming a bad media type: refused')

  // The same rule judges a change made here: the store refuses it before writing.
  await t.rejects(F.core.docs.change(ds, d => { addVersion(d, [{ ...good, size: -1 }], 'local', { userId: alice.userId, at: new Date().toISOString() }) }, { author: alice.userId }),
    { code: 'FORBIDDEN', message: /size must be/ })
  // And a well-formed reference is admitted.
  const { change: fine } = forge({
    key: ds,
    base: await docOf(F, ds),
    message: await claimsOf(F, alice.userId),
    signer: F.key,
    fn: d => { addVersion(d, [{ ...good, mediaType: 'text/csv; charset=utf-8' }], 'fine', { userId: alice.userId, at: new Date().toISOString() }) }
  })
  t.same((await C.admit([item(fine)])).refused, [], 'a well-formed file reference is admitted')
})

t.test('the HTTP path: malformed references are refused with 400 and nothing is written', async t => {
  const n = await startTestNode(t)
  const id = await dataset(n)
  const bytes = randomBytes(1000)
  const seq = n.node.docs.seq

  const res = await upload(n, id, [['page.html', bytes, 'nonsense']])
  t.equal(res.status, 400)
  t.match(((await res.json()) as any).error.message, /invalid media type/)
  t.equal(await n.node.blobs.has(sha(bytes)), false, 'the bytes were not stored')
  t.equal(n.node.docs.seq, seq, 'no record changed')

  const { files: [file] } = await uploaded(n, id, [['data.csv', bytes, 'text/csv']])
  const good = { name: 'data.csv', sha256: file?.sha256, size: bytes.length, mediaType: 'text/csv' }
  const report = (files: object[]): object => ({ reportKind: 'bias', title: 'r', subject: { kind: 'dataset', id }, body: {}, files })
  const seq2 = n.node.docs.seq
  for (const [what, ref, message] of [
    ['CR/LF in the media type', { ...good, mediaType: CRLF_TYPE }, /mediaType must be/],
    ['a bare media type', { ...good, mediaType: 'csv' }, /mediaType must be/],
    ['a negative size', { ...good, size: -1 }, /size/],
    ['a size past 2^53', { ...good, size: 1e20 }, /size must be a whole number/],
    ['a size that is not the file\'s', { ...good, size: bytes.length - 1 }, /has 1000 bytes, not 999/]
  ] as const) {
    const r = await api(n, 'POST', '/reports', report([ref]))
    t.equal(r.status, 400, what)
    t.match(r.body.error.message, message, what)
  }
  t.equal(n.node.docs.seq, seq2, 'no report was written')
  t.equal((await api(n, 'POST', '/reports', report([good]))).status, 201, 'the well-formed reference is taken')
})

t.test('downloads: nosniff, a safe Content-Disposition, a stored malformed media type served as octet-stream', async t => {
  const n = await startTestNode(t)
  const member = await addMember(n, 'mara')
  const id = await dataset(n, member.headers)
  const html = Buffer.from('<script>alert(document.cookie)</script>')
  const name = 'données été (v2).html'
  const { versionId } = await uploaded(n, id, [[name, html, 'text/html']], member.headers)
  const got = await download(n, id, versionId, name)
  t.equal(got.status, 200)
  t.equal(got.headers.get('x-content-type-options'), 'nosniff')
  t.match(got.headers.get('content-security-policy'), /sandbox/)
  t.equal(got.headers.get('content-type'), 'text/html')
  t.equal(got.headers.get('content-disposition'), 'attachment; filename="donn_es _t_ (v2).html"; filename*=UTF-8\'\'donn%C3%A9es%20%C3%A9t%C3%A9%20%28v2%29.html')
  t.ok(got.bytes.equals(html))

  for (const raw of ['a\r\nSet-Cookie: x=1.txt', 'quote"; filename="evil.exe', '..\\..\\win.ini', '\ud800lone surrogate', 'tab\there']) {
    const header = contentDisposition(raw)
    t.notMatch(header, /[\r\n\t\u0000-\u001f]/, `${JSON.stringify(raw)}: no control characters`)
    t.equal(header.match(/"/g)?.length, 2, `${JSON.stringify(raw)}: only the two quotes around the fallback`)
    t.match(header, /^attachment; filename="[\x20-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]*$/, `${JSON.stringify(raw)}: RFC 6266/5987 form`)
    t.notMatch(header, /[\\/]/, `${JSON.stringify(raw)}: no path separator`)
  }

  // A record from before the rule, holding a media type with CR/LF: served, as bytes.
  const bytes = randomBytes(100)
  const { files: [file] } = await uploaded(n, id, [['raw.bin', bytes]], member.headers)
  const planted = await beforeTheRules(n, async () => await plantVersion(n, id, [{ ...file as FileRef, name: 'evil.html', mediaType: CRLF_TYPE }]))
  const evil = await download(n, id, planted, 'evil.html')
  t.equal(evil.status, 200, 'not a 500')
  t.equal(evil.headers.get('content-type'), 'application/octet-stream')
  t.equal(evil.headers.get('set-cookie'), null, 'no header injected')
  t.ok(evil.bytes.equals(bytes))
})

t.test('a size that is not the file\'s is never answered 200 with other bytes', async t => {
  const n = await startTestNode(t)
  const id = await dataset(n)
  const bytes = randomBytes(200_000)
  const { versionId, files: [file] } = await uploaded(n, id, [['data.bin', bytes]])
  const short = await plantVersion(n, id, [{ ...file as FileRef, name: 'short.bin', size: bytes.length - 1000 }])
  const long = await plantVersion(n, id, [{ ...file as FileRef, name: 'long.bin', size: bytes.length + 1000 }])
  for (const [v, name] of [[short, 'short.bin'], [long, 'long.bin']] as const) {
    const got = await download(n, id, v, name)
    t.equal(got.status, 409, `${name}: 409`)
    t.equal(got.error?.code, 'CONFLICT')
    t.match(got.error?.message, /the record declares \d+ bytes for .*, but the file with its sha256 has 200000/)
  }
  const honest = await download(n, id, versionId, 'data.bin')
  t.equal(honest.status, 200)
  t.ok(honest.bytes.equals(bytes), 'the honest record still downloads whole')
})

t.test('a member references only blobs they can read, and the answer leaks nothing about the rest', async t => {
  const n = await startTestNode(t)
  const mara = await addMember(n, 'mara')
  const olek = await addMember(n, 'olek')
  const subject = await dataset(n, mara.headers, 'subject')
  const report = (files: object[]): object => ({ reportKind: 'bias', title: 'r', subject: { kind: 'dataset', id: subject }, body: {}, files })

  // olek's live dataset: mara can read it, so she may cite its file.
  const olekBytes = randomBytes(500)
  const { files: [olekFile] } = await uploaded(n, await dataset(n, olek.headers, 'olek'), [['o.csv', olekBytes, 'text/csv']], olek.headers)
  const cited = await api(n, 'POST', '/reports', report([olekFile as FileRef]), mara.headers)
  t.equal(cited.status, 201, 'a file of a live record anyone can read')
  t.equal((await api(n, 'GET', `/reports/${cited.body.id as string}`, undefined, mara.headers)).body.files[0].present, true)

  // An admin's dataset, deleted: its bytes are still on disk until gc.
  const secret = randomBytes(700)
  const adminDs = await dataset(n, n.admin, 'secret')
  await uploaded(n, adminDs, [['secret.bin', secret]])
  t.equal((await api(n, 'DELETE', `/datasets/${adminDs}`)).status, 204)
  t.equal(await n.node.blobs.has(sha(secret)), true, 'the bytes are still here')

  const ref = (bytes: Uint8Array): FileRef => ({ name: 'x.bin', sha256: sha(bytes), size: bytes.length, mediaType: 'application/octet-stream' })
  const seq = n.node.docs.seq
  const deleted = await api(n, 'POST', '/reports', report([ref(secret)]), mara.headers)
  const nowhere = await api(n, 'POST', '/reports', report([ref(randomBytes(700))]), mara.headers)
  t.equal(deleted.status, 400)
  t.equal(nowhere.status, 400)
  t.equal(deleted.body.error.code, nowhere.body.error.code)
  t.equal(deleted.body.error.message.replace(/[0-9a-f]{64}/, '<sha>'), nowhere.body.error.message.replace(/[0-9a-f]{64}/, '<sha>'), 'the same answer for bytes here and bytes nowhere')
  t.match(deleted.body.error.message, /no file with sha256 .* that you can read/)
  t.equal(n.node.docs.seq, seq, 'nothing written')

  // The HTTP checks bypassed (a hostile site's own store): the record stands, but the bytes stay as if absent.
  const hostile = await dataset(n, n.admin, 'resurrect')
  const planted = await plantVersion(n, hostile, [ref(secret)])
  const view = await api(n, 'GET', `/datasets/${hostile}`)
  t.equal(view.body.versions[0].files[0].present, false, 'not reported present')
  const absentV = await plantVersion(n, hostile, [{ ...ref(randomBytes(700)), name: 'y.bin' }])
  const resurrected = await download(n, hostile, planted, 'x.bin')
  const absent = await download(n, hostile, absentV, 'y.bin')
  t.equal(resurrected.status, 503, 'not served')
  t.same([resurrected.status, resurrected.error?.code, resurrected.error?.message], [absent.status, absent.error?.code, absent.error?.message], 'answered exactly as a file that is nowhere')
  const gc = await api(n, 'POST', '/blobs/gc', {})
  t.ok(gc.body.removed.some((b: { sha256: string }) => b.sha256 === sha(secret)), 'garbage collection removes the deleted record\'s bytes')

  // An upload of the same bytes is proof of holding them: that version's file is served.
  const again = await dataset(n, n.admin, 'uploaded again')
  const { versionId } = await uploaded(n, again, [['secret.bin', secret]])
  t.equal((await download(n, again, versionId, 'secret.bin')).status, 200)
})

t.test('across the mesh: a lying size is caught before any byte moves; a deleted record\'s blob is not served to a peer\'s new reference', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)

  // b uploads; a plants a record declaring another size for the same bytes.
  const bytes = randomBytes(300_000)
  const honestDs = await dataset(b)
  const { versionId, files: [file] } = await uploaded(b, honestDs, [['data.bin', bytes]])
  await eventually(async () => (await api(a, 'GET', `/datasets/${honestDs}`)).status === 200, 20_000, 'metadata on a')
  const lyingDs = await dataset(a)
  const lying = await plantVersion(a, lyingDs, [{ ...file as FileRef, name: 'short.bin', size: bytes.length - 100 }])
  await eventually(async () => (await api(b, 'GET', `/datasets/${lyingDs}`)).status === 200, 20_000, 'the lying record on b')

  const sent = async (): Promise<number> => Number((await api(b, 'GET', '/sync/status')).body.blobBytesOut)
  const before = await sent()
  const onA = await download(a, lyingDs, lying, 'short.bin')
  t.equal(onA.status, 409, 'a, fetching for the lying record: 409')
  t.equal(onA.error?.code, 'CONFLICT')
  t.equal(await sent(), before, 'b sent not one byte for it')
  const whole = await download(a, honestDs, versionId, 'data.bin')
  t.equal(whole.status, 200)
  t.ok(whole.bytes.equals(bytes), 'the honest record fetches the whole file')
  t.equal((await download(a, lyingDs, lying, 'short.bin')).status, 409, 'with the bytes here, still 409')
  t.equal((await download(b, lyingDs, lying, 'short.bin')).status, 409, 'and on b')

  // b's dataset is deleted; a's admin then names its blob in a new record.
  const secret = randomBytes(50_000)
  const gone = await dataset(b, b.admin, 'to delete')
  await uploaded(b, gone, [['secret.bin', secret]])
  await eventually(async () => (await api(a, 'GET', `/datasets/${gone}`)).status === 200, 20_000, 'metadata on a')
  t.equal((await api(b, 'DELETE', `/datasets/${gone}`)).status, 204)
  await eventually(async () => (await api(a, 'GET', `/datasets/${gone}`)).status === 410, 20_000, 'the deletion on a')
  const thief = await dataset(a, a.admin, 'thief')
  const stolen = await plantVersion(a, thief, [{ name: 'secret.bin', sha256: sha(secret), size: secret.length, mediaType: 'application/octet-stream' }])
  await eventually(async () => await converged([a, b]), 20_000, 'converged')

  const beforeTheft = await sent()
  const onThiefSite = await download(a, thief, stolen, 'secret.bin')
  t.equal(onThiefSite.status, 503, 'a cannot fetch it: b does not serve it')
  t.equal(await sent(), beforeTheft, 'b sent nothing')
  const onB = await download(b, thief, stolen, 'secret.bin')
  t.equal(onB.status, 503, 'b does not serve it to its own clients either')
  t.equal((await api(b, 'GET', `/datasets/${thief}`)).body.versions[0].files[0].present, false)

  // A restore brings the file back through the restored record.
  const restored = await api(b, 'POST', `/datasets/${gone}/restore`)
  t.equal(restored.status, 200)
  const back = await download(b, gone, restored.body.versions[0].id, 'secret.bin')
  t.equal(back.status, 200)
  t.ok(back.bytes.equals(secret))
})
