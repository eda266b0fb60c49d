// Sync sessions negotiate compression (issue 11): fewer bytes for the same
// records, sessions with peers of the previous wire version stay plain, and
// a compressed frame is held to the same limits as a plain one.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { constants, zstdCompressSync } from 'node:zlib'
import { encode as cborEncode } from 'cborg'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { compressed } from '../../src/peer/sync/compression.ts'
import { MAX_SYNC_MESSAGE, PROTOCOL_VERSION } from '../../src/peer/sync/messages.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { addDatasets, testStore } from '../helpers/doc-store.ts'

async function filled (t: any, n: number): Promise<DocStore> {
  const s = await testStore(t)
  await addDatasets(s, n, i => ({ name: `survey ${i}`, description: 'CTD casts along the transect, station by station', tags: ['ocean', 'ctd'] }))
  return s
}

/** Records every message a side sends, and its bytes as a frame would carry them (CBOR). */
function watched (stream: MessageStream): MessageStream & { sent: unknown[], bytes: () => number } {
  const sent: unknown[] = []
  let bytes = 0
  return {
    ...stream,
    sent,
    bytes: () => bytes,
    send: async (m: unknown) => { sent.push(m); bytes += cborEncode(m).byteLength; await stream.send(m) }
  }
}

async function session (from: DocStore, to: DocStore, options: { serve?: boolean, pull?: boolean, thin?: boolean } = {}): Promise<{ serverBytes: number, pullerBytes: number, serverSent: unknown[], received: number }> {
  const [client, server] = streamPair()
  const watchedServer = watched(server)
  const watchedClient = watched(client)
  const serving = serveSync(watchedServer, from, { compression: options.serve, thinLink: options.thin })
  const stats = await pullSync(watchedClient, to, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {}, compression: options.pull })
  await serving
  return { serverBytes: watchedServer.bytes(), pullerBytes: watchedClient.bytes(), serverSent: watchedServer.sent, received: stats.recordsReceived }
}

t.test('a compressed session moves the same records in fewer bytes, both ways', async t => {
  const a = await filled(t, 300)
  const plain = await session(a, await testStore(t), { serve: false })
  const packed = await session(a, await testStore(t))
  t.equal(plain.received, 300)
  t.equal(packed.received, 300)
  t.ok(packed.serverBytes < plain.serverBytes * 0.9, `server sent ${packed.serverBytes} bytes compressed, ${plain.serverBytes} plain`)
  t.ok(packed.pullerBytes < plain.pullerBytes * 0.9, `puller sent ${packed.pullerBytes} bytes compressed, ${plain.pullerBytes} plain`)
  t.equal((packed.serverSent[0] as { z?: string }).z, 'zstd-s', 'one zstd stream per direction when both sides have it')
  t.ok(packed.serverSent.slice(1).every(m => m instanceof Object && Object.keys(m).sort().join() === 'n,s'), 'everything after the welcome is compressed')
})

t.test('to a puller over a thin link the server compresses harder: the same records in fewer bytes', async t => {
  // Records that differ as field records do (the repeated ones above leave a codec little to find).
  const words = ['ctd', 'cast', 'transect', 'salinity', 'station', 'north', 'ridge', 'plankton', 'tow', 'buoy', 'drift', 'sonde']
  const word = (i: number, k: number): string => words[(i * 7 + k * 13 + ((i * k) % 5)) % words.length] as string
  const a = await testStore(t)
  await addDatasets(a, 300, i => ({
    name: `survey ${i} ${word(i, 1)}`,
    description: Array.from({ length: 24 }, (_, k) => word(i, k)).join(' '),
    tags: [word(i, 2), `site-${i % 17}`],
    metadata: { site: `site-${i % 17}`, depth: (i * 37) % 400, instrument: `${word(i, 3)} ${word(i, 4)}` }
  }))
  const usual = await session(a, await testStore(t))
  const thin = await session(a, await testStore(t), { thin: true })
  const b = await testStore(t)
  const thinToB = await session(a, b, { thin: true })
  t.equal(thin.received, 300)
  t.equal(thinToB.received, 300)
  t.ok(thin.serverBytes < usual.serverBytes, `thin link: ${thin.serverBytes} bytes from the server, ${usual.serverBytes} otherwise`)
  t.equal(thin.pullerBytes, usual.pullerBytes, "the puller's side is its own choice, unchanged")
  const heads = async (s: DocStore): Promise<Record<string, string[]>> => {
    const out: Record<string, string[]> = {}
    for await (const [key, meta] of s.scan('dataset/')) out[key] = meta.heads
    return out
  }
  t.same(await heads(b), await heads(a), 'what arrives is the same records, whole')
})

t.test('a puller that reads only per-message zstd gets it', async t => {
  const a = await filled(t, 50)
  const [client, server] = streamPair()
  const watchedServer = watched(server)
  const serving = serveSync(watchedServer, a)
  // What a node of the previous version sends: it knows `zstd` alone.
  await client.send({ t: 'hello', v: PROTOCOL_VERSION, epoch: '', since: 0, live: false, z: ['zstd'] })
  const welcome = (await client.read()).value as { z?: string }
  t.equal(welcome.z, 'zstd')
  const offer = (await client.read()).value as Record<string, unknown>
  t.same(Object.keys(offer), ['z'], 'each message compressed on its own')
  await client.close()
  await serving.catch(() => {})
})

t.test('one stream per session: messages sent one at a time shrink against the ones before', async t => {
  // 100 offers of one changed record each, as a live link sends them.
  const messages = Array.from({ length: 100 }, (_, i) => ({ t: 'offer', batch: i, through: 1000 + i, items: [[docKey('dataset', newId()), [randomBytes(32).toString('hex')]]] }))
  const bytes = async (codec: 'zstd' | 'zstd-s'): Promise<number> => {
    const [a, b] = streamPair()
    let sent = 0
    const sender = compressed({ ...a, send: async (frame: any) => { sent += (frame.s ?? frame.z).length; await a.send(frame) } }, codec)
    const receiver = compressed(b, codec)
    for (const m of messages) await sender.send(m)
    for (const m of messages) t.same((await receiver.read()).value, m)
    return sent
  }
  const each = await bytes('zstd')
  const streamed = await bytes('zstd-s')
  t.ok(streamed < each * 0.7, `streamed ${streamed} bytes, each on its own ${each}`)
})

t.test('peers of the previous wire version: sessions stay plain either way round', async t => {
  const a = await filled(t, 20)
  // An older server ignores hello.z: its welcome names no codec.
  const oldServer = await session(a, await testStore(t), { serve: false })
  t.equal(oldServer.received, 20)
  t.notOk((oldServer.serverSent[0] as { z?: string }).z, 'no codec in the welcome')
  t.ok(oldServer.serverSent.slice(1).every(m => (m as { t?: string }).t !== undefined), 'plain messages')
  // An older puller offers none.
  const oldPuller = await session(a, await testStore(t), { pull: false })
  t.equal(oldPuller.received, 20)
  t.notOk((oldPuller.serverSent[0] as { z?: string }).z)
})

t.test('compressed frames are held to the limits of plain ones', async t => {
  const a = await filled(t, 1)
  const hello = { t: 'hello', v: PROTOCOL_VERSION, epoch: '', since: 0, live: false, z: ['zstd'] }

  // A small frame that would inflate past the frame limit is a violation, not an allocation.
  {
    const [client, server] = streamPair()
    const serving = serveSync(server, a)
    await client.send(hello)
    await client.read()
    const bomb = zstdCompressSync(cborEncode({ t: 'ack', through: 1, pad: new Uint8Array(MAX_SYNC_MESSAGE + 1024) }))
    t.ok(bomb.length < 64 * 1024, `the bomb is small on the wire (${bomb.length} bytes)`)
    await client.send({ z: new Uint8Array(bomb) })
    await t.rejects(serving, { code: 'INVALID_MESSAGE', message: /does not decompress within/ })
  }
  // After a welcome that named a codec, a plain message is a violation.
  {
    const [client, server] = streamPair()
    const serving = serveSync(server, a)
    await client.send(hello)
    await client.read()
    await client.send({ t: 'ack', through: 0 })
    await t.rejects(serving, { code: 'INVALID_MESSAGE', message: /expected a compressed frame/ })
  }
  // Bytes that are not the codec's.
  {
    const [client, server] = streamPair()
    const serving = serveSync(server, a)
    await client.send(hello)
    await client.read()
    await client.send({ z: new Uint8Array([1, 2, 3, 4]) })
    await t.rejects(serving, { code: 'INVALID_MESSAGE' })
  }
  // The same limits on a session's stream.
  const streamHello = { ...hello, z: ['zstd-s'] }
  const streamFrame = (message: unknown, n?: number, windowLog = 19): { s: Uint8Array, n: number } => {
    const body = cborEncode(message)
    return { s: new Uint8Array(zstdCompressSync(body, { params: { [constants.ZSTD_c_windowLog]: windowLog } })), n: n ?? body.length }
  }
  for (const [what, frame, message] of [
    ['announcing a length past the frame limit', { s: new Uint8Array(8), n: MAX_SYNC_MESSAGE + 1 }, /expected a compressed frame/],
    ['inflating past the length it announced', streamFrame({ t: 'ack', through: 1, pad: new Uint8Array(MAX_SYNC_MESSAGE + 1024) }, 16), /more than it announced/],
    ['needing a larger window than a session stream has', streamFrame({ t: 'ack', through: 1, pad: new Uint8Array(4 * 1024 * 1024) }, undefined, 23), /not valid zstd/],
    ['decoding to less than it announced', streamFrame({ t: 'ack', through: 1 }, 1000), /not the 1000 it announced/],
    ['not zstd', { s: new Uint8Array([1, 2, 3, 4]), n: 4 }, /./],
    ['a per-message frame', { z: new Uint8Array(zstdCompressSync(cborEncode({ t: 'ack', through: 0 }))) }, /expected a compressed frame/]
  ] as const) {
    const [client, server] = streamPair()
    const serving = serveSync(server, a)
    await client.send(streamHello)
    t.equal(((await client.read()).value as { z?: string }).z, 'zstd-s')
    await client.send(frame)
    await t.rejects(serving, { code: 'INVALID_MESSAGE', message }, `a stream frame ${what}`)
  }
  // A server that picks a codec the puller did not offer.
  {
    const [client, server] = streamPair()
    const pulling = pullSync(client, await testStore(t), { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {}, compression: false })
    await server.read()
    await server.send({ t: 'welcome', v: PROTOCOL_VERSION, epoch: 'e', head: 0, from: 0, session: 'ab', z: 'zstd' })
    await t.rejects(pulling, { code: 'INVALID_MESSAGE', message: /was not offered/ })
  }
})
