// Deterministic reproducers for the bugs the fuzz tests found (issue 5,
// item 5). Each subtest asserts the correct behaviour; the assertions that
// show a known, unfixed bug carry `todo: 'BUG-n ...'`, so the suite stays
// green until the fix lands (tap reports them as todo, not as passes).
// Drop the todo when fixing; FUZZ_STRICT=1 makes them count as failures.
import t from 'tap'
import { createHash } from 'node:crypto'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import * as A from '@automerge/automerge'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { startTestNode, type TestNode } from '../helpers/node.ts'
import { addressOf, converged, eventually, link } from '../helpers/mesh.ts'
import { startTestPeer, type TestPeer } from '../peer/helpers.ts'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { MAX_SYNC_MESSAGE, PROTOCOL_VERSION, SYNC_PROTOCOL } from '../../src/peer/sync/messages.ts'
import { packSigs } from '../../src/crdt/doc-store.ts'
import { BLOB_PROTOCOL, MAX_BLOB_MESSAGE } from '../../src/blobs/transfer/messages.ts'
import { Rng, varint } from './rng.ts'
import { drain, sleep } from './wire.ts'

const STRICT = process.env.FUZZ_STRICT === '1'
/** Bugs fixed since the fuzzer found them: their assertions count for real. */
const FIXED = new Set(['BUG-1', 'BUG-2', 'BUG-3', 'BUG-4', 'BUG-5', 'BUG-6', 'BUG-7', 'BUG-8', 'BUG-9', 'BUG-10', 'BUG-11'])
/** Extra for assertions that show a known, unfixed bug: todo unless FUZZ_STRICT=1. */
const known = (bug: string): { todo?: string } => STRICT || FIXED.has(bug.slice(0, bug.indexOf(':'))) ? {} : { todo: bug }
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

type BlobBehaviour = (framed: FramedStream, request: any, file: Uint8Array) => Promise<void>

interface Setup {
  node: TestNode
  honest: TestNode
  evil: TestPeer
  url: (name: string) => string
  /** f.bin, the file the single-file scenarios use. */
  file: Uint8Array<ArrayBuffer>
  /** f0.bin... when more were asked for: [name, bytes]. */
  files: Array<[string, Uint8Array<ArrayBuffer>]>
  /** Connect the evil peer (trusted by the node); it claims every blob and answers gets with `behaviour`. */
  connectEvil: () => Promise<void>
  unlinkHonest: () => Promise<void>
  relinkHonest: () => Promise<void>
}

/** A file that only the honest peer holds; the node has its metadata. */
async function blobSetup (t: any, behaviour: BlobBehaviour, size = 300_000, more = 0): Promise<Setup> {
  // The honest peer founds the mesh (it writes before it is linked); the node joins it.
  const honest = await startTestNode(t)
  const node = await startTestNode(t)
  const evil = await startTestPeer(t)
  const file = new Rng(7).bytes(size)
  const files = Array.from({ length: more }, (_, i): [string, Uint8Array<ArrayBuffer>] => [`f${i}.bin`, new Rng(100 + i).bytes(size)])
  const bySha = new Map([file, ...files.map(([, b]) => b)].map(b => [sha(b), b]))
  const ds = (await honest.node.api.inject({ method: 'POST', url: '/datasets', headers: honest.admin, payload: { name: 'files' } })).json()
  const form = new FormData()
  form.append('file', new Blob([file]), 'f.bin')
  for (const [name, bytes] of files) form.append('file', new Blob([bytes]), name)
  const version = await (await fetch(`${honest.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: honest.admin, body: form })).json() as { id: string }
  await link(node, honest)
  await eventually(async () => await converged([node, honest]), 15_000, 'metadata on the node')
  await evil.node.handle(BLOB_PROTOCOL, (stream: Stream) => {
    void (async () => {
      const framed = new FramedStream(stream, { maxMessageSize: MAX_BLOB_MESSAGE })
      const req = (await framed.read()).value as any
      if (req?.t === 'has') {
        await framed.send({ t: 'have', hashes: req.hashes })
        await framed.close()
        return
      }
      await behaviour(framed, req, bySha.get(req?.sha256) ?? file)
    })().catch(() => {})
  }, { maxInboundStreams: 16 })
  const peerHonest = async (): Promise<void> => {
    await node.node.api.inject({ method: 'POST', url: '/peers', headers: node.admin, payload: { multiaddr: addressOf(honest) } })
  }
  return {
    node,
    honest,
    evil,
    file,
    files,
    url: (name) => `${node.node.url}/datasets/${ds.id as string}/versions/${version.id}/files/${name}`,
    connectEvil: async () => {
      await node.node.api.inject({ method: 'POST', url: '/peers', headers: node.admin, payload: { multiaddr: evil.addr, name: 'evil' } })
      await evil.book.add(addressOf(node))
      await evil.node.dial(multiaddr(addressOf(node)))
      await sleep(300)
    },
    unlinkHonest: async () => {
      await node.node.api.inject({ method: 'DELETE', url: `/peers/${honest.node.peerId}`, headers: node.admin })
      await honest.node.api.inject({ method: 'DELETE', url: `/peers/${node.node.peerId}`, headers: honest.admin })
    },
    relinkHonest: async () => {
      await peerHonest()
      await honest.node.api.inject({ method: 'POST', url: '/peers', headers: honest.admin, payload: { multiaddr: addressOf(node) } })
      await eventually(() => node.node.libp2p.getConnections().some(c => c.remotePeer.toString() === honest.node.peerId && c.status === 'open'), 10_000, 'honest reconnected')
    }
  }
}

async function download (url: string, headers: Record<string, string>, ms = 20_000): Promise<{ status: number | string, body?: Buffer, bodyError?: string }> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(ms) })
    try {
      return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
    } catch (err) {
      return { status: res.status, bodyError: (err as Error).name }
    }
  } catch (err) {
    return { status: (err as Error).name }
  }
}

t.test('a peer that sends wrong bytes never yields a complete 200 with those bytes', async t => {
  const bug = known('BUG-1: stream-as-fetched passes unverified bytes on and ends the response normally')
  // Evil announces the right size, then sends random bytes of that size.
  const s = await blobSetup(t, async (framed, req, file) => {
    await framed.send({ t: 'blob', size: file.length })
    const junk = new Rng(99).bytes(file.length - req.offset)
    for (let at = 0; at < junk.length; at += 65536) await framed.send({ t: 'chunk', data: junk.subarray(at, at + 65536) })
    await framed.send({ t: 'end' })
    await framed.close()
  }, 300_000, 8)
  await s.connectEvil()
  // With the honest peer connected too, evil is used when it answers `has` first; then evil alone.
  // Each try uses a fresh file: once caught, evil is never asked for that blob again.
  const outcomes: string[] = []
  let wrong = 0
  for (const [i, [name, bytes]] of s.files.entries()) {
    const alone = i >= 5
    if (i === 5) await s.unlinkHonest()
    const got = await download(s.url(name), s.node.admin)
    const complete200Wrong = got.status === 200 && got.body !== undefined && !got.body.equals(Buffer.from(bytes))
    if (complete200Wrong) wrong++
    outcomes.push(`${alone ? 'evil only' : 'both'}: ${String(got.status)}${got.bodyError !== undefined ? '+' + got.bodyError : ''}${complete200Wrong ? ' WRONG BYTES' : got.body?.equals(Buffer.from(bytes)) === true ? ' ok' : ''}`)
  }
  t.comment(outcomes.join('; '))
  t.equal(wrong, 0, `no complete 200 response carried the wrong bytes (${wrong} of ${outcomes.length} did)`, bug)
})

t.test('a peer that stops mid-blob does not get the honest peer blamed, and the file still arrives', async t => {
  const bug = known('BUG-2: the poisoned partial file is resumed from the next peer, which is then marked a liar')
  // Evil sends the right size, then the first half as random bytes, then ends the stream.
  const s = await blobSetup(t, async (framed, _req, file) => {
    await framed.send({ t: 'blob', size: file.length })
    await framed.send({ t: 'chunk', data: new Rng(5).bytes(Math.floor(file.length / 2)).subarray(0, 200_000) })
    await framed.close()
  })
  await s.unlinkHonest()
  await s.connectEvil()
  const first = await download(s.url('f.bin'), s.node.admin)
  t.not(first.status, 500, `first download (evil only): ${String(first.status)}`)
  // Evil goes away; the honest peer, which has the right bytes, comes back.
  await s.node.node.api.inject({ method: 'DELETE', url: `/peers/${s.evil.peerId}`, headers: s.node.admin })
  await s.relinkHonest()
  let last: Awaited<ReturnType<typeof download>> | undefined
  for (let i = 0; i < 3; i++) {
    last = await download(s.url('f.bin'), s.node.admin)
    if (last.status === 200 && last.body?.equals(Buffer.from(s.file)) === true) break
    await sleep(500)
  }
  const blamed = (await s.node.node.api.inject({ url: '/audit?type=blob.mismatch', headers: s.node.admin })).json().items.map((e: any) => e.peer)
  t.notOk(blamed.includes(s.honest.node.peerId), `the honest peer is not audited as a liar (blob.mismatch against: ${JSON.stringify(blamed)})`, bug)
  t.ok(last?.status === 200 && last.body?.equals(Buffer.from(s.file)), `the file downloads intact from the honest peer (last answer: ${String(last?.status)} ${last?.status === 200 ? (last.body?.equals(Buffer.from(s.file)) === true ? 'intact' : 'WRONG BYTES') : last?.body?.toString().slice(0, 150) ?? last?.bodyError ?? ''})`, bug)
  t.ok(await s.node.node.blobs.has(sha(s.file)), 'the node keeps the verified copy', bug)
})

t.test('a peer that goes silent does not hang downloads or availability', async t => {
  const bug = known('BUG-3: blob fetch reads (has and get) have no timeout')
  // Evil answers `get` with the size and then nothing, keeping the stream open; a second evil never answers `has`.
  const s = await blobSetup(t, async (framed, _req, file) => {
    await framed.send({ t: 'blob', size: file.length })
    // Silent from here on; the stream stays open until the test ends.
    await framed.read().catch(() => {})
  })
  const mute = await startTestPeer(t)
  await mute.node.handle(BLOB_PROTOCOL, () => { /* read nothing, answer nothing */ }, { maxInboundStreams: 16 })
  await s.node.node.api.inject({ method: 'POST', url: '/peers', headers: s.node.admin, payload: { multiaddr: mute.addr, name: 'mute' } })
  await mute.book.add(addressOf(s.node))
  await s.unlinkHonest()
  await s.connectEvil()
  const started = Date.now()
  const [got, availability] = await Promise.all([
    download(s.url('f.bin'), s.node.admin, 25_000),
    (async () => {
      await mute.node.dial(multiaddr(addressOf(s.node)))
      const url = s.url('f.bin').replace(/\/versions\/.*$/, '/availability')
      return await download(url, s.node.admin, 25_000)
    })()
  ])
  t.comment(`download: ${String(got.status)} ${got.bodyError ?? ''}; availability: ${String(availability.status)}; after ${Date.now() - started} ms`)
  t.not(got.status, 'TimeoutError', 'the download ends (with an error is fine) instead of hanging', bug)
  t.not(got.bodyError, 'TimeoutError', 'the download body ends instead of hanging', bug)
  t.not(availability.status, 'TimeoutError', 'availability answers although one peer never answers `has`', bug)
})

t.test('one small sync frame cannot make the node allocate hundreds of MB or block for seconds', async t => {
  const bug = known('BUG-4: FramedStream decodes a whole frame eagerly; CBOR items cost ~75 bytes of heap per encoded byte')
  const node = await startTestNode(t)
  const evil = await startTestPeer(t)
  await node.node.api.inject({ method: 'POST', url: '/peers', headers: node.admin, payload: { multiaddr: evil.addr, name: 'evil' } })
  await evil.book.add(addressOf(node))
  const conn = await evil.node.dial(multiaddr(addressOf(node)))
  // A 4 MiB frame: one CBOR array of four million empty maps (the frame limit is 16 MiB).
  const n = 4 * 1024 * 1024
  const body = new Uint8Array(n + 5)
  body[0] = 0x9a
  new DataView(body.buffer).setUint32(1, n)
  body.fill(0xa0, 5)
  ;(globalThis as { gc?: () => void }).gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  let heapMax = heapBefore
  const sampler = setInterval(() => { heapMax = Math.max(heapMax, process.memoryUsage().heapUsed) }, 1)
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const stream = await conn.newStream(SYNC_PROTOCOL)
  const framed = new FramedStream(stream, { maxMessageSize: MAX_SYNC_MESSAGE })
  stream.send(varint(body.length))
  stream.send(body)
  const res = await drain(framed, 20_000)
  await sleep(200)
  delay.disable()
  clearInterval(sampler)
  const grewMiB = (heapMax - heapBefore) / 2 ** 20
  t.equal(res.end, 'error', 'the stream is reset')
  t.comment(`heap grew by ${grewMiB.toFixed(0)} MiB for a ${(body.length / 2 ** 20).toFixed(1)} MiB frame; event loop blocked up to ${(delay.max / 1e6).toFixed(0)} ms`)
  t.ok(grewMiB < 40, `heap growth ${grewMiB.toFixed(0)} MiB < 40 MiB (at 16 MiB a frame costs ~1.2 GB and 6-7 s of blocked event loop)`, bug)
  t.ok(delay.max < 300e6, `event loop blocked ${(delay.max / 1e6).toFixed(0)} ms < 300 ms`, bug)
})

t.test('the sync server refuses a want for a batch it already answered', async t => {
  const bug = known('BUG-5: serve.ts counts every want against `outstanding` and answers repeats')
  const node = await startTestNode(t)
  const evil = await startTestPeer(t)
  await node.node.api.inject({ method: 'POST', url: '/datasets', headers: node.admin, payload: { name: 'one' } })
  await node.node.api.inject({ method: 'POST', url: '/peers', headers: node.admin, payload: { multiaddr: evil.addr, name: 'evil' } })
  await evil.book.add(addressOf(node))
  const conn = await evil.node.dial(multiaddr(addressOf(node)))
  const framed = new FramedStream(await conn.newStream(SYNC_PROTOCOL), { maxMessageSize: MAX_SYNC_MESSAGE })
  await framed.send({ t: 'hello', v: PROTOCOL_VERSION, epoch: '', since: 0, live: true })
  let answers = 0
  const res = await drain(framed, 2000, async (m: any) => {
    if (m?.t === 'offer' && m.batch === 0) {
      for (let i = 0; i < 5; i++) await framed.send({ t: 'want', batch: 0, items: m.items.map(([k]: [string]) => [k, []]) })
    }
    if (m?.t === 'docs' && m.last === true) answers++
  })
  framed.abort(new Error('done'))
  t.comment(`5 wants for batch 0 got ${answers} complete answers; stream ${res.end}`)
  t.ok(answers <= 1, `a repeated want is a protocol violation, not answered again (${answers} answers)`, bug)
})

/** Records as a peer may send them: well-formed Automerge, unexpected shapes (another version, another implementation, a bug). */
t.test('record views survive replicated documents with unexpected shapes', async t => {
  const bug = known('BUG-6: recordView / withPresence / availability assume the local schema and 500 on anything else')
  const node = await startTestNode(t)
  // The records come from a full node of the mesh, made by its admin and signed by it: what the rules admit.
  const peer = await startTestNode(t)
  await link(node, peer)
  await eventually(async () => await converged([node, peer]), 15_000, 'the roster on both')
  const author = peer.node.trust.localAdminId
  const template = (kind: string, id: string): Record<string, unknown> => ({
    kind, id, name: 'peer record', createdAt: '2026-01-01T00:00:00.000Z', createdBy: author, updatedAt: '2026-01-01T00:00:00.000Z', updatedBy: author,
    deletions: {}, tags: {}, metadata: {}, versions: {}, owner: author, description: ''
  })
  const rng = new Rng(3)
  const cases: Array<[string, (d: Record<string, any>) => void]> = [
    ['metadata is null', d => { d.metadata = null }],
    ['a version file is null', d => { d.versions = { [rng.uuid()]: { id: rng.uuid(), at: 'x', author, files: [null], note: '' } } }],
    ['versions lack files', d => { d.versions = { [rng.uuid()]: { id: rng.uuid(), at: 'x', author } } }],
    ['a training entry is null', d => { d.kind = 'model'; d.training = { a: null, b: { at: '1', by: author } } }],
    ['a training entry lacks fields', d => { d.kind = 'model'; d.training = { b: { by: author } } }],
    ['an int64 beyond 2^53 in metadata', d => { d.metadata = { n: 2 ** 53 } }],
    ['deletions is a string', d => { d.deletions = 'yes' }],
    ['deletions is a number', d => { d.deletions = 7 }],
    ['tags is null', d => { d.tags = null }]
  ]
  const problems: string[] = []
  const refused: string[] = []
  for (const [what, mutate] of cases) {
    const id = rng.uuid()
    const doc = template('dataset', id)
    mutate(doc)
    const kind = doc.kind === 'model' ? 'model' : 'dataset'
    // One change made on the peer, with the claims its store records and its signature.
    const claims = await peer.node.trust.claims(author)
    const made = A.change(A.init<any>(), { message: claims, time: Math.floor(Date.now() / 1000) }, d => { Object.assign(d, doc) })
    const [hash] = A.getHeads(made) as [string]
    const item = { key: `${kind}/${id}`, bytes: A.save(made), sigs: packSigs([[hash, peer.node.trust.sign(hash)]]) }
    // The same call the sync puller makes with documents a peer sent.
    const result = await node.node.docs.admitRemote([item]).catch((err: Error) => { problems.push(`${what}: not even stored (${err.message})`) })
    if (result !== undefined && result.refused.length > 0) refused.push(`${what}: ${result.refused.map(r => r.reason).join('; ')}`)
    for (const url of [`/${kind}s/${id}`, `/${kind}s/${id}/availability`, `/${kind}s`]) {
      const res = await node.node.api.inject({ url, headers: node.admin })
      if (res.statusCode >= 500) problems.push(`${what}: GET ${url.replace(id, '<id>')} -> ${res.statusCode}`)
    }
  }
  t.same(problems, [], 'no 5xx, and no failed batch, for records with unexpected shapes', bug)
  // The rules may refuse shapes they cannot attribute to the author (a null training entry
  // names nobody; a string's characters may read as deletions naming nobody); every other
  // shape is admitted, so the views above did read it.
  const mayRefuse = ['a training entry is null', 'deletions is a string']
  t.same(refused.filter(r => !mayRefuse.some(m => r.startsWith(`${m}: `))), [], 'the other shapes are admitted, so their views are exercised')
  t.comment(`refused by the rules: ${refused.join('; ') || 'none'}`)
})

t.test('large integers in JSON maps read back, and never leave a record answering 500', async t => {
  const bug = known('BUG-7: JSON numbers >= 2^53-1 (and integral floats up to 1e308) are stored as Automerge int64: read back as BigInt (500) or clamped to 2^63-1')
  const n = await startTestNode(t)
  const problems: string[] = []
  for (const [url, payload] of [
    ['/datasets', { name: 'big', metadata: { n: 2 ** 53 } }],
    ['/datasets', { name: 'huge', metadata: { n: 1e20 } }],
    ['/models', { name: 'm', metrics: { loss: 1e300 } }]
  ] as const) {
    const seq = n.node.docs.seq
    const res = await n.node.api.inject({ method: 'POST', url, headers: n.admin, payload })
    if (res.statusCode >= 500) problems.push(`POST ${url} ${JSON.stringify(payload)} -> ${res.statusCode} (yet the feed moved ${seq} -> ${n.node.docs.seq}: the record was stored)`)
    else if (res.statusCode === 201) {
      const got = await n.node.api.inject({ url: `${url}/${res.json().id as string}`, headers: n.admin })
      if (got.statusCode !== 200) problems.push(`GET ${url}/<id> -> ${got.statusCode}`)
      else if (JSON.stringify(got.json().metadata ?? got.json().metrics) !== JSON.stringify(payload.metadata ?? (payload as any).metrics)) problems.push(`${url}: stored ${JSON.stringify(got.json().metadata ?? got.json().metrics)}, sent ${JSON.stringify(payload)}`)
    }
  }
  // A member poisons an existing record with one PATCH.
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'fine' } })).json()
  await n.node.api.inject({ method: 'PATCH', url: `/datasets/${ds.id as string}`, headers: n.admin, payload: { metadata: { n: 9007199254740993 } } })
  const after = await n.node.api.inject({ url: `/datasets/${ds.id as string}`, headers: n.admin })
  if (after.statusCode !== 200) problems.push(`GET of a dataset after PATCH metadata {n: 2^53+1} -> ${after.statusCode}`)
  t.same(problems, [], 'large numbers are refused (400) or stored as floats, and read back', bug)
})

t.test('router errors get the API\'s JSON error, and long file names download', async t => {
  const bug = known('BUG-8: Fastify router errors (maxParamLength 100 -> 414, bad %-escape -> 400) bypass the error handler; file names of 101-255 bytes upload but never download')
  const n = await startTestNode(t)
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x' } })).json()
  const name = 'n'.repeat(150) + '.csv'
  const form = new FormData()
  form.append('file', new Blob(['a,b\n']), name)
  const up = await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: n.admin, body: form })
  t.equal(up.status, 201, 'a 154-character file name is accepted on upload')
  const version = await up.json() as { id: string }
  const got = await n.node.api.inject({ url: `/datasets/${ds.id as string}/versions/${version.id}/files/${encodeURIComponent(name)}`, headers: n.admin })
  t.equal(got.statusCode, 200, `...and downloads (got ${got.statusCode})`, bug)
  const long = await n.node.api.inject({ url: `/datasets/${'a'.repeat(150)}`, headers: n.admin })
  t.ok(long.statusCode < 500 && typeof long.json().error?.code === 'string', `an over-long id gets a JSON error with error.code (got ${long.statusCode} ${long.body.slice(0, 80)})`, bug)
  const badEscape = await n.node.api.inject({ url: '/datasets/%zz', headers: n.admin })
  t.ok(badEscape.statusCode === 400 && typeof badEscape.json().error?.code === 'string', `a bad %-escape gets a JSON error with error.code (got ${badEscape.statusCode} ${badEscape.body.slice(0, 80)})`, bug)
})

t.test('malformed multipart uploads answer 400, not 500', async t => {
  const bug = known('BUG-9: busboy parse errors and a missing filename reach the error handler as plain errors')
  const n = await startTestNode(t)
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x' } })).json()
  const url = `/datasets/${ds.id as string}/versions`
  const b = '----fuzzboundary'
  const cases: Array<[string, Record<string, string>, string]> = [
    ['no boundary', { 'content-type': 'multipart/form-data' }, `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\nx\r\n--${b}--\r\n`],
    ['truncated (no closing boundary)', { 'content-type': `multipart/form-data; boundary=${b}` }, `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\nunfinished`],
    ['empty filename', { 'content-type': `multipart/form-data; boundary=${b}` }, `--${b}\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\nx\r\n--${b}--\r\n`]
  ]
  const got: string[] = []
  for (const [what, headers, payload] of cases) {
    const res = await n.node.api.inject({ method: 'POST', url, headers: { ...n.admin, ...headers }, payload })
    got.push(`${what}: ${res.statusCode}`)
  }
  t.same(got, cases.map(([what]) => `${what}: 400`), 'each is a 400', bug)
})

t.test('a refused upload leaves no blob behind', async t => {
  const bug = known('BUG-10: files stored before a later part fails stay in the blob store, unreferenced, until the next gc')
  const n = await startTestNode(t)
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x' } })).json()
  const count = async (): Promise<number> => { let c = 0; for await (const _ of n.node.blobs.list()) c++; return c }
  const before = await count()
  const form = new FormData()
  form.append('file', new Blob([new Rng(1).bytes(10_000)]), 'ok.bin')
  form.append('zz', 'an unknown field after the file')
  const res = await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: n.admin, body: form })
  t.equal(res.status, 400, 'the upload is refused')
  t.equal(await count(), before, `the blob store holds what it held before (${before} -> ${await count()})`, bug)
})

t.test('a refused upload never takes a blob an identical upload in flight is about to reference', async t => {
  const n = await startTestNode(t)
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'x' } })).json()
  const url = `${n.node.url}/datasets/${ds.id as string}/versions`
  const shared = new Rng(7).bytes(50_000)
  const hash = sha(shared)
  const boundary = '----racing'
  const part = (name: string, bytes: Uint8Array): Uint8Array[] => [
    new TextEncoder().encode(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    bytes,
    new TextEncoder().encode('\r\n')
  ]
  /** A multipart body the test feeds piece by piece, so two uploads interleave in a known order. */
  const upload = (): { push: (chunks: Uint8Array[]) => void, end: (tail: string) => void, response: Promise<Response> } => {
    let controller!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({ start (c) { controller = c } })
    const response = fetch(url, { method: 'POST', headers: { ...n.admin, 'content-type': `multipart/form-data; boundary=${boundary}` }, body, duplex: 'half' } as RequestInit)
    return {
      push: chunks => { for (const c of chunks) controller.enqueue(c) },
      end: tail => { controller.enqueue(new TextEncoder().encode(tail)); controller.close() },
      response
    }
  }
  // A stores the shared file first (new to the store), then B stores the same bytes (already there).
  const a = upload()
  a.push(part('shared.bin', shared))
  a.push([new TextEncoder().encode(`--${boundary}\r\n`)])
  await eventually(async () => await n.node.blobs.has(hash), 10_000, 'A stored the shared file')
  const b = upload()
  b.push(part('shared.bin', shared))
  b.push([new TextEncoder().encode(`--${boundary}\r\n`)])
  await sleep(500)
  // A is refused (an unknown field) while B is still in flight.
  a.end(`Content-Disposition: form-data; name="zz"\r\n\r\nunknown\r\n--${boundary}--\r\n`)
  t.equal((await a.response).status, 400, 'A is refused')
  t.ok(await n.node.blobs.has(hash), 'the shared file is still there while B is in flight')
  // B finishes with a second file and is accepted: its version references the shared file.
  b.end(`Content-Disposition: form-data; name="file"; filename="more.bin"\r\n\r\nmore\r\n--${boundary}--\r\n`)
  const created = await b.response
  t.equal(created.status, 201, 'B is accepted')
  const version = await created.json() as { id: string }
  const got = await fetch(`${url}/${version.id}/files/shared.bin`, { headers: n.admin })
  t.equal(got.status, 200, 'B\'s shared file downloads')
  t.equal(sha(Buffer.from(await got.arrayBuffer())), hash, '...with its bytes')
})

t.test('a download that fails before its first byte answers a JSON error, not Fastify\'s 500', async t => {
  const bug = known('BUG-11: the file route sets content-type/content-length before sending the stream; when the stream fails first, the error handler\'s object cannot be sent as application/octet-stream')
  // Evil announces 10 bytes (the node starts answering the client), then sends 1000: the fetch fails before the client gets a byte.
  const s = await blobSetup(t, async (framed) => {
    await framed.send({ t: 'blob', size: 10 })
    await sleep(500)
    await framed.send({ t: 'chunk', data: new Uint8Array(1000) })
    await framed.send({ t: 'end' })
    await framed.close()
  })
  await s.unlinkHonest()
  await s.connectEvil()
  const res = await fetch(s.url('f.bin'), { headers: s.node.admin, signal: AbortSignal.timeout(15_000) })
  const text = await res.text().catch((err: Error) => `<body error ${err.name}>`)
  t.comment(`${res.status} ${res.headers.get('content-type') ?? ''} ${text.slice(0, 200)}`)
  t.ok(res.status < 500 || res.status === 503, `not a 500 (got ${res.status})`, bug)
  let body: any
  try { body = JSON.parse(text) } catch {}
  t.ok(typeof body?.error?.code === 'string', 'a JSON error with error.code', bug)
})
