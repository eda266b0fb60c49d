// Deterministic reproducers for the bugs the fuzz tests found in fetching
// blobs from peers (BUG-1, 2, 3 and 11; the others are in bugs.test.ts, see
// known-bugs.ts for the todo convention). A file of its own: each case
// starts three nodes and waits out the fetcher's timeouts, so together with
// the others they took close to tap's per-file limit on a loaded machine.
import t from 'tap'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { startTestNode, type TestNode } from '../helpers/node.ts'
import { addressOf, converged, eventually, link } from '../helpers/mesh.ts'
import { startTestPeer, type TestPeer } from '../peer/helpers.ts'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { BLOB_PROTOCOL, MAX_BLOB_MESSAGE } from '../../src/blobs/transfer/messages.ts'
import { known, sha } from './known-bugs.ts'
import { Rng } from './rng.ts'
import { sleep } from './wire.ts'

/**
 * How long a client waits for a download or an availability answer before
 * calling it hung. The node gives up on a silent peer after 5 s (has) or
 * 10 s (between chunks); on a loaded machine the answer then takes 15 s or
 * more. A hung request never ends, so a generous bound still tells them apart.
 */
const HANG_MS = 60_000

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
  await eventually(async () => await converged([node, honest]), HANG_MS, 'metadata on the node')
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
      // The node must see the connection before a download can use evil (a loaded machine takes a while).
      await eventually(() => node.node.libp2p.getConnections().some(c => c.remotePeer.toString() === evil.peerId && c.status === 'open'), HANG_MS, 'evil connected')
      await sleep(300)
    },
    unlinkHonest: async () => {
      await node.node.api.inject({ method: 'DELETE', url: `/peers/${honest.node.peerId}`, headers: node.admin })
      await honest.node.api.inject({ method: 'DELETE', url: `/peers/${node.node.peerId}`, headers: honest.admin })
    },
    relinkHonest: async () => {
      await peerHonest()
      await honest.node.api.inject({ method: 'POST', url: '/peers', headers: honest.admin, payload: { multiaddr: addressOf(node) } })
      await eventually(() => node.node.libp2p.getConnections().some(c => c.remotePeer.toString() === honest.node.peerId && c.status === 'open'), HANG_MS, 'honest reconnected')
    }
  }
}

async function download (url: string, headers: Record<string, string>, ms = HANG_MS): Promise<{ status: number | string, body?: Buffer, bodyError?: string }> {
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
    download(s.url('f.bin'), s.node.admin),
    (async () => {
      await mute.node.dial(multiaddr(addressOf(s.node)))
      const url = s.url('f.bin').replace(/\/versions\/.*$/, '/availability')
      return await download(url, s.node.admin)
    })()
  ])
  t.comment(`download: ${String(got.status)} ${got.bodyError ?? ''}; availability: ${String(availability.status)}; after ${Date.now() - started} ms`)
  t.not(got.status, 'TimeoutError', 'the download ends (with an error is fine) instead of hanging', bug)
  t.not(got.bodyError, 'TimeoutError', 'the download body ends instead of hanging', bug)
  t.not(availability.status, 'TimeoutError', 'availability answers although one peer never answers `has`', bug)
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
  const res = await fetch(s.url('f.bin'), { headers: s.node.admin, signal: AbortSignal.timeout(HANG_MS) })
  const text = await res.text().catch((err: Error) => `<body error ${err.name}>`)
  t.comment(`${res.status} ${res.headers.get('content-type') ?? ''} ${text.slice(0, 200)}`)
  t.ok(res.status < 500 || res.status === 503, `not a 500 (got ${res.status})`, bug)
  let body: any
  try { body = JSON.parse(text) } catch {}
  t.ok(typeof body?.error?.code === 'string', 'a JSON error with error.code', bug)
})
