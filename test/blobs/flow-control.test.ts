// Blob flow control (issue 11): a fetcher that acknowledges what it takes
// in gets small pieces, and the server keeps what is unacknowledged within
// a window that follows the delivery rate; acknowledgements are validated
// like every peer message. Either side may be older: a new fetcher and a
// server that ignores `ack`, an old fetcher and the new server, both still
// move the whole file. File pieces wait for records to the same peer.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'
import { BlobFetcher } from '../../src/blobs/transfer/fetcher.ts'
import { serveBlob } from '../../src/blobs/transfer/serve.ts'
import { BLOB_PROTOCOL, BLOB_PROTOCOL_VERSION, CHUNK_BYTES, MAX_BLOB_MESSAGE, parseBlobAck, parseBlobRequest, parseBlobResponse } from '../../src/blobs/transfer/messages.ts'
import { MAX_WINDOW, MIN_WINDOW, QUEUE_TARGET_MS, SendWindow } from '../../src/blobs/transfer/send-window.ts'
import { LinkPriority } from '../../src/peer/link-priority.ts'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { tempDir } from '../helpers/tmp.ts'
import { startTestPeer, trustEachOther, waitFor, within } from '../peer/helpers.ts'

const KiB = 1024
const MiB = 1024 * KiB

async function blobIn (store: MemoryBlobStore, size: number): Promise<{ bytes: Buffer, sha: string }> {
  const bytes = randomBytes(size)
  await store.put(Readable.from([bytes]))
  return { bytes, sha: createHash('sha256').update(bytes).digest('hex') }
}

/** Whether `promise` has settled once every pending callback and I/O event ran. */
async function settled (promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
  return done
}

const pause = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('messages: get.ack and blob.ack are booleans, an ack counts bytes', async t => {
  const sha = 'a'.repeat(64)
  t.same(parseBlobRequest({ t: 'get', v: 1, sha256: sha, offset: 0, ack: true }), { t: 'get', v: 1, sha256: sha, offset: 0, ack: true })
  t.same(parseBlobRequest({ t: 'get', v: 1, sha256: sha, offset: 0 }), { t: 'get', v: 1, sha256: sha, offset: 0 }, 'no ack: as before')
  t.same(parseBlobRequest({ t: 'get', v: 1, sha256: sha, offset: 0, ack: false }), { t: 'get', v: 1, sha256: sha, offset: 0 })
  t.throws(() => parseBlobRequest({ t: 'get', v: 1, sha256: sha, offset: 0, ack: 1 }), { code: 'INVALID_MESSAGE' })
  t.same(parseBlobResponse({ t: 'blob', size: 5, ack: true }), { t: 'blob', size: 5, ack: true })
  t.same(parseBlobResponse({ t: 'blob', size: 5 }), { t: 'blob', size: 5 })
  t.throws(() => parseBlobResponse({ t: 'blob', size: 5, ack: 'yes' }), { code: 'INVALID_MESSAGE' })
  t.same(parseBlobAck({ t: 'ack', bytes: 65536 }), { t: 'ack', bytes: 65536 })
  for (const bad of [{ t: 'ack', bytes: 1.5 }, { t: 'ack', bytes: -1 }, { t: 'ack' }, { t: 'ack', bytes: '5' }, { t: 'get', bytes: 5 }, [1], null]) {
    t.throws(() => parseBlobAck(bad), { code: 'INVALID_MESSAGE' }, JSON.stringify(bad))
  }
})

t.test('the send window: full until acknowledged; counts that go back or past what was sent fail it', async t => {
  let now = 0
  const w = new SendWindow({ now: () => now })
  t.equal(w.size, MIN_WINDOW, 'starts at the smallest window')
  await w.room(MIN_WINDOW)
  w.sending(MIN_WINDOW)
  t.equal(w.unacked, MIN_WINDOW)
  const waiting = w.room(1)
  t.equal(await settled(waiting), false, 'no room while the window is full')
  now += 10
  w.ack(1000)
  t.equal(await settled(waiting), true, 'room once some is acknowledged')
  w.sending(1)
  t.throws(() => { w.ack(999) }, { code: 'INVALID_MESSAGE', message: /acknowledged already/ }, 'a count that goes back')
  await t.rejects(w.room(1), { code: 'INVALID_MESSAGE' }, 'and the sender stops')

  for (const bad of [MIN_WINDOW + 2, 1.5, Number.NaN]) {
    const v = new SendWindow()
    v.sending(MIN_WINDOW + 1)
    const blocked = v.room(MIN_WINDOW)
    t.throws(() => { v.ack(bad) }, { code: 'INVALID_MESSAGE' }, `ack ${bad}`)
    await t.rejects(blocked, { code: 'INVALID_MESSAGE' }, 'a sender waiting for room is told')
  }

  const nothing = new SendWindow()
  await nothing.room(10 * MiB)
  t.pass('a piece larger than the window goes when nothing is unacknowledged')
})

/**
 * A sender on a simulated link, sending as serveBlob does: each piece waits
 * for room in the window, crosses the link at `bytesPerMs` behind the
 * pieces before it, and its acknowledgement is back `rttMs` after.
 */
class SimulatedLink {
  now = 0
  maxUnacked = 0
  readonly window = new SendWindow({ now: () => this.now })
  /** Bytes per ms the link carries (a link shared with other traffic may drop). */
  bytesPerMs: number
  readonly #rttMs: number
  readonly #acks: Array<{ at: number, bytes: number }> = []
  #linkFree = 0

  constructor (bytesPerMs: number, rttMs: number) {
    this.bytesPerMs = bytesPerMs
    this.#rttMs = rttMs
  }

  /** Sends as fast as the window allows for `ms`; the share of the link used. */
  async send (ms: number): Promise<number> {
    const [end, before] = [this.now + ms, this.window.sent]
    while (this.now < end) await this.#piece()
    return (this.window.sent - before) / ms / this.bytesPerMs
  }

  /** A sender held back by something else (records, a slow disk): one small piece every `everyMs`. */
  async trickle (ms: number, everyMs: number): Promise<void> {
    const end = this.now + ms
    while (this.now < end) {
      await this.#piece(4 * KiB)
      const next = this.now + everyMs
      while (this.#acks.length > 0 && (this.#acks[0] as { at: number }).at <= next) this.#ack()
      this.now = next
    }
  }

  async #piece (bytes = this.window.piece): Promise<void> {
    const w = this.window
    if (w.unacked > 0 && w.unacked + bytes > w.size) {
      const room = w.room(bytes)
      while (w.unacked > 0 && w.unacked + bytes > w.size) this.#ack()
      await room
    }
    w.sending(bytes)
    this.maxUnacked = Math.max(this.maxUnacked, w.unacked)
    this.#linkFree = Math.max(this.#linkFree, this.now) + bytes / this.bytesPerMs
    this.#acks.push({ at: this.#linkFree + this.#rttMs, bytes: w.sent })
  }

  #ack (): void {
    const next = this.#acks.shift() as { at: number, bytes: number }
    this.now = Math.max(this.now, next.at)
    this.window.ack(next.bytes)
  }
}

t.test('the window follows the delivery rate: full size on a LAN, about a quarter second of data on a thin link', async t => {
  const lan = new SimulatedLink(150_000, 0.2) // 150 MB/s
  t.ok(await lan.send(2_000) > 0.9, 'a LAN runs at the link\'s speed')
  t.equal(lan.window.size, MAX_WINDOW, 'with the window all the way open')
  const thin = new SimulatedLink(125, 600) // 1 Mbit/s, 600 ms round trip
  await thin.send(30_000)
  const usage = await thin.send(90_000)
  t.ok(usage > 0.9, `the thin link is kept busy (${Math.round(usage * 100)}%)`)
  t.ok(thin.window.size >= MIN_WINDOW && thin.window.size <= 125 * (600 + QUEUE_TARGET_MS + 200), `1 Mbit/s: window ${thin.window.size} bytes, about rate x (RTT + ${QUEUE_TARGET_MS} ms)`)
  t.ok(thin.maxUnacked <= 125 * (600 + QUEUE_TARGET_MS + 200), 'never more than that in flight')
  const near = new SimulatedLink(125, 20) // 1 Mbit/s, 20 ms round trip
  await near.send(60_000)
  t.equal(near.window.size, MIN_WINDOW, 'a thin link with a short round trip keeps the smallest window')

  // A sender held back by something other than the window says nothing of the link.
  await lan.trickle(5_000, 100)
  t.equal(lan.window.size, MAX_WINDOW, 'a LAN sender that waited on records or its disk keeps its window')
  // The link slows to 10 Mbit/s (shared with other traffic): the window follows it down.
  lan.bytesPerMs = 1250
  await lan.send(60_000)
  t.ok(lan.window.size <= 1250 * 2 * QUEUE_TARGET_MS, `a link that slows down shrinks the window (${lan.window.size} bytes)`)
})

/**
 * A fetcher written out by hand against `serveBlob`: asks with `ack` (or
 * not), reads everything, acknowledges when `acks` says so.
 */
async function handFetch (client: MessageStream, sha: string, options: { ack: boolean, ackAfter?: (received: number) => Promise<void> | void }): Promise<{ head: Record<string, unknown>, data: Buffer, chunkSizes: number[] }> {
  await client.send(options.ack ? { t: 'get', v: BLOB_PROTOCOL_VERSION, sha256: sha, offset: 0, ack: true } : { t: 'get', v: BLOB_PROTOCOL_VERSION, sha256: sha, offset: 0 })
  const head = (await client.read()).value as Record<string, unknown>
  const parts: Buffer[] = []
  const chunkSizes: number[] = []
  let received = 0
  while (true) {
    const next = await client.read()
    if (next.done === true) throw new Error('ended before end')
    const msg = parseBlobResponse(next.value)
    if (msg.t === 'end') break
    if (msg.t !== 'chunk') throw new Error(`unexpected ${msg.t}`)
    parts.push(Buffer.from(msg.data))
    chunkSizes.push(msg.data.length)
    received += msg.data.length
    if (options.ack) {
      await options.ackAfter?.(received)
      await client.send({ t: 'ack', bytes: received })
    }
  }
  await client.close()
  return { head, data: Buffer.concat(parts), chunkSizes }
}

t.test('a server never has more than its window unacknowledged', async t => {
  const store = new MemoryBlobStore()
  const { bytes, sha } = await blobIn(store, 3 * MiB + 123)
  const [client, server] = streamPair()
  let served = 0
  let acked = 0
  let worst = 0
  const serving = serveBlob(server, store, { mayServe: async () => true, onBytes: n => { served += n; worst = Math.max(worst, served - acked) } })
  const fetched = handFetch(client, sha, {
    ack: true,
    ackAfter: async received => {
      if (acked === 0) {
        // The first acknowledgement is late: a server that does not wait
        // for it has long sent more than its first window by then.
        await pause(200)
        t.ok(served <= MIN_WINDOW, `before any acknowledgement, ${served} bytes sent: within the first window`)
      }
      acked = received
    }
  })
  const { head, data, chunkSizes } = await within(60_000, fetched, 'transfer')
  await within(10_000, serving, 'server')
  t.same(head, { t: 'blob', size: bytes.length, ack: true }, 'the server says it reads acknowledgements')
  t.ok(data.equals(bytes), 'the whole file')
  t.ok((chunkSizes[0] as number) <= MIN_WINDOW / 4, 'small pieces while the window is small')
  t.ok(chunkSizes.every(n => n <= CHUNK_BYTES), 'never more than a chunk')
  t.ok(worst <= MAX_WINDOW, `at most ${worst} bytes unacknowledged`)
})

t.test('a malformed acknowledgement ends the stream as a protocol violation', async t => {
  const store = new MemoryBlobStore()
  const { sha } = await blobIn(store, 2 * MiB)
  const cases: Array<{ name: string, acks: (firstChunk: number) => unknown[] }> = [
    { name: 'not an integer', acks: n => [{ t: 'ack', bytes: n / 2 + 0.5 }] },
    { name: 'negative', acks: () => [{ t: 'ack', bytes: -5 }] },
    { name: 'decreasing', acks: n => [{ t: 'ack', bytes: n }, { t: 'ack', bytes: n - 1 }] },
    { name: 'more than was sent', acks: () => [{ t: 'ack', bytes: 2 * MiB }] },
    { name: 'another message', acks: () => [{ t: 'get', v: 1, sha256: sha, offset: 0 }] }
  ]
  for (const { name, acks } of cases) {
    const [client, server] = streamPair()
    const serving = serveBlob(server, store, { mayServe: async () => true })
    await client.send({ t: 'get', v: BLOB_PROTOCOL_VERSION, sha256: sha, offset: 0, ack: true })
    t.match((await client.read()).value, { t: 'blob', ack: true })
    const first = parseBlobResponse((await client.read()).value)
    if (first.t !== 'chunk') throw new Error('expected a chunk')
    for (const ack of acks(first.data.length)) await client.send(ack)
    await t.rejects(within(10_000, serving, name), { code: 'INVALID_MESSAGE' }, name)
    // Whatever was already sent may still be read; then the stream is gone.
    await t.rejects(within(10_000, (async () => { while (!(await client.read()).done); })(), 'the fetcher\'s side ends'), /ack|acknowledged|malformed|expected ack/, `${name}: the fetcher's side is aborted`)
  }

  // Ending its side mid-transfer leaves a server that waits for room nothing to wait for.
  const [client, server] = streamPair()
  const serving = serveBlob(server, store, { mayServe: async () => true })
  await client.send({ t: 'get', v: BLOB_PROTOCOL_VERSION, sha256: sha, offset: 0, ack: true })
  await client.read()
  await client.read()
  await client.close()
  await t.rejects(within(10_000, serving, 'closed early'), { code: 'INVALID_MESSAGE', message: /ended its side/ })
})

/** A server as before issue 11: it builds the request from the fields it knows, and never reads again. */
function asOlderServer (stream: MessageStream): MessageStream & { laterReads: () => number } {
  let reads = 0
  return {
    ...stream,
    laterReads: () => Math.max(0, reads - 1),
    read: async () => {
      reads += 1
      const next = await stream.read()
      if (reads > 1 || next.done === true) return next
      const { ack: _ack, ...known } = next.value as Record<string, unknown>
      return { done: false, value: known }
    }
  }
}

t.test('a new fetcher and a server that ignores ack: the whole file, and no acknowledgement sent', async t => {
  const peerStore = new MemoryBlobStore()
  const { sha } = await blobIn(peerStore, 2 * MiB + 77)
  const sent: string[] = []
  const servers: Array<ReturnType<typeof asOlderServer>> = []
  const store = new MemoryBlobStore()
  const fetcher = new BlobFetcher({
    store,
    partialDir: await tempDir(t, 'dw-partial-'),
    transport: {
      connectedPeers: () => ['old'],
      openStream: async () => {
        const [client, server] = streamPair()
        const older = asOlderServer(server)
        servers.push(older)
        void serveBlob(older, peerStore, { mayServe: async () => true }).catch(() => {})
        return { ...client, send: async (m: unknown) => { sent.push((m as { t: string }).t); await client.send(m) } }
      }
    }
  })
  await within(60_000, fetcher.fetch(sha), 'fetch')
  t.equal(await store.has(sha), true, 'fetched and verified')
  t.same(sent, ['has', 'get'], 'the older server did not say it reads acknowledgements: none sent')
  t.same(servers.map(s => s.laterReads()), [0, 0], 'the server never read after the request')
})

t.test('an old fetcher that sends no acks gets the whole file from the new server, in 1 MiB chunks, after records', async t => {
  const store = new MemoryBlobStore()
  const { bytes, sha } = await blobIn(store, 2 * MiB + 500)
  const gate = new LinkPriority({ maxWaitMs: 60_000 })
  gate.syncBusy('old-fetcher', true)
  const [client, server] = streamPair()
  let served = 0
  const serving = serveBlob(server, store, { mayServe: async () => true, peer: 'old-fetcher', priority: gate, onBytes: n => { served += n } })
  const fetched = handFetch(client, sha, { ack: false })
  await pause(100)
  t.equal(served, 0, 'no chunk while records move to that peer')
  gate.syncBusy('old-fetcher', false)
  const { head, data, chunkSizes } = await within(60_000, fetched, 'transfer')
  await within(10_000, serving, 'server')
  t.same(head, { t: 'blob', size: bytes.length }, 'no ack field for a fetcher that did not ask')
  t.ok(data.equals(bytes), 'the whole file')
  t.same(chunkSizes, [CHUNK_BYTES, CHUNK_BYTES, 500], 'chunks as before')
})

t.test('over libp2p: a new fetcher and server; file pieces wait while records move to the fetcher', async t => {
  const a = await startTestPeer(t)
  const b = await startTestPeer(t)
  await trustEachOther(a, b)
  const peerStore = new MemoryBlobStore()
  const { sha } = await blobIn(peerStore, 6 * MiB + 3)
  const gate = new LinkPriority({ maxWaitMs: 60_000 })
  let served = 0
  let pieces = 0
  let acks = 0
  const serving: Array<Promise<void>> = []
  await a.node.handle(BLOB_PROTOCOL, (stream, connection) => {
    const framed = new FramedStream(stream, { maxMessageSize: MAX_BLOB_MESSAGE })
    // The server's side as it reads it: acknowledgements counted.
    const counted: MessageStream = {
      send: async m => { await framed.send(m) },
      read: async () => {
        const next = await framed.read()
        if ((next.value as { t?: string } | undefined)?.t === 'ack') acks += 1
        return next
      },
      close: async () => { await framed.close() },
      abort: err => { framed.abort(err) }
    }
    serving.push(serveBlob(counted, peerStore, { mayServe: async () => true, peer: connection.remotePeer.toString(), priority: gate, onBytes: n => { served += n; pieces += 1 } }).catch(err => {
      framed.abort(err as Error)
      throw err
    }))
  })
  const conn = await b.node.dial(a.node.getMultiaddrs()[0] as Parameters<typeof b.node.dial>[0])
  const store = new MemoryBlobStore()
  const fetcher = new BlobFetcher({
    store,
    partialDir: await tempDir(t, 'dw-partial-'),
    transport: {
      connectedPeers: () => [a.peerId],
      openStream: async () => new FramedStream(await conn.newStream(BLOB_PROTOCOL), { maxMessageSize: MAX_BLOB_MESSAGE })
    }
  })
  gate.syncBusy(b.peerId, true)
  const fetching = fetcher.fetch(sha)
  await waitFor(() => serving.length === 2, 10_000, 'the get reaches the server')
  await pause(200)
  t.equal(served, 0, 'not one piece while records move to the fetcher')
  gate.syncBusy(b.peerId, false)
  await within(60_000, fetching, 'fetch')
  t.equal(await store.has(sha), true, 'fetched and verified')
  await within(10_000, Promise.all(serving), 'server')
  t.equal(served, 6 * MiB + 3)
  await waitFor(() => acks === pieces, 10_000, 'every piece acknowledged')
  t.pass(`the fetcher asked for flow control and acknowledged each of the ${pieces} pieces`)
})
