import { multiaddr } from '@multiformats/multiaddr'
import t from 'tap'
import type { Stream } from '@libp2p/interface'
import type { Test } from 'tap'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { startTestPeer, trustEachOther, waitFor, within } from './helpers.ts'
import type { TestPeer } from './helpers.ts'

const PROTOCOL = '/dw-test/framed/1.0.0'
const MiB = 1024 * 1024

type TestMessage = { seq: number, from: string, change: Uint8Array, meta: { tags: string[] } }

function message (seq: number, from: string): TestMessage {
  const change = new Uint8Array(16 + (seq % 200))
  for (let i = 0; i < change.length; i++) change[i] = (seq + i) & 0xff
  return { seq, from, change, meta: { tags: [`t${seq % 7}`] } }
}

/**
 * libp2p's connection monitor pings every 10 s and aborts the connection
 * when a ping takes over 5 s. Here both ends and the pings share one
 * process; on a loaded machine a ping waits behind megabytes of these tests'
 * frames for 20 s and more, and the monitor then cuts the connection in the
 * middle of an exchange (TimeoutError; 3 runs of 3 beside two CPU hogs).
 * What these tests check is the framing, not libp2p's liveness check.
 */
function withoutLivenessPings (...peers: TestPeer[]): void {
  for (const peer of peers) (peer.node as unknown as { components: { connectionMonitor?: { stop: () => void } } }).components.connectionMonitor?.stop()
}

/** Two trusting nodes; `b` hands each inbound test stream to `onStream`. */
async function pair (t: Test): Promise<{ a: TestPeer, b: TestPeer, inbound: Promise<Stream>, dial: () => Promise<Stream> }> {
  const a = await startTestPeer(t)
  const b = await startTestPeer(t)
  withoutLivenessPings(a, b)
  await trustEachOther(a, b)
  const { promise: inbound, resolve } = Promise.withResolvers<Stream>()
  await b.node.handle(PROTOCOL, (stream) => { resolve(stream) })
  const dial = async (): Promise<Stream> => await a.node.dialProtocol(multiaddr(b.addr), PROTOCOL, { signal: AbortSignal.timeout(5000) })
  return { a, b, inbound, dial }
}

async function collect (framed: FramedStream): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const msg of framed) out.push(msg)
  return out
}

void t.test('10,000 pipelined messages each way, concurrently, with binary fields', async (t) => {
  const { a, b, inbound, dial } = await pair(t)
  const left = new FramedStream(await dial())
  const right = new FramedStream(await within(5000, inbound, 'inbound stream'))
  const count = 10_000

  const sendAll = async (framed: FramedStream, from: string): Promise<void> => {
    for (let seq = 0; seq < count; seq++) await framed.send(message(seq, from))
    await framed.close()
  }
  const started = Date.now()
  const [fromB, fromA] = await within(60_000, Promise.all([
    collect(left),
    collect(right),
    sendAll(left, a.peerId),
    sendAll(right, b.peerId)
  ]), 'exchange')
  t.comment(`exchanged ${2 * count} messages in ${Date.now() - started} ms`)

  for (const [received, from] of [[fromA, a.peerId], [fromB, b.peerId]] as const) {
    t.equal(received.length, count, `all messages from ${from.slice(-6)} arrived`)
    const bad = received.findIndex((msg, seq) => {
      const m = msg as TestMessage
      const want = message(seq, from)
      return m.seq !== seq || m.from !== from || !(m.change instanceof Uint8Array) || Buffer.compare(m.change, want.change) !== 0 || m.meta.tags[0] !== want.meta.tags[0]
    })
    t.equal(bad, -1, 'in order, intact, Uint8Array fields decoded as Uint8Array')
  }
  await waitFor(() => left.stream.status === 'closed' && right.stream.status === 'closed', 5000, 'both ends closed')
})

void t.test('sends issued without awaiting each one arrive in call order', async (t) => {
  const { a, inbound, dial } = await pair(t)
  const left = new FramedStream(await dial())
  await left.send({ hello: true })
  const right = new FramedStream(await within(5000, inbound, 'inbound stream'))
  const reading = collect(right)
  const sends: Array<Promise<void>> = []
  for (let seq = 0; seq < 10_000; seq++) sends.push(left.send(message(seq, a.peerId)))
  await within(30_000, Promise.all(sends), 'sends')
  await left.close()
  const received = await within(30_000, reading, 'reader')
  t.equal(received.length, 10_001)
  t.ok(received.slice(1).every((msg, seq) => (msg as TestMessage).seq === seq), 'in call order')
})

void t.test('request/response after a half-close, and read() with a signal', async (t) => {
  const { inbound, dial } = await pair(t)
  const client = new FramedStream(await dial())
  await client.send({ op: 'sum', values: [1, 2, 3] })
  await client.close()

  const server = new FramedStream(await within(5000, inbound, 'inbound stream'))
  const requests = await within(5000, collect(server), 'server read')
  t.same(requests, [{ op: 'sum', values: [1, 2, 3] }], 'server sees the end of the requests')
  await server.send({ sum: 6 })
  await server.close()

  t.same(await within(5000, client.read(), 'client read'), { done: false, value: { sum: 6 } })
  t.same(await within(5000, client.read(), 'client end'), { done: true, value: undefined })

  const { dial: dial2 } = await pair(t)
  const idle = new FramedStream(await dial2())
  await t.rejects(idle.read({ signal: AbortSignal.timeout(100) }), { name: 'TimeoutError' }, 'a read can be bounded')
  idle.abort(new Error('done'))
})

void t.test('a reader attached after the remote already finished still sees every message and the end', async (t) => {
  const a = await startTestPeer(t)
  const b = await startTestPeer(t)
  withoutLivenessPings(a, b)
  await trustEachOther(a, b)
  const { promise: inbound, resolve } = Promise.withResolvers<Stream>()
  await b.node.handle(PROTOCOL, (stream) => { resolve(stream) })
  const client = new FramedStream(await a.node.dialProtocol(multiaddr(b.addr), PROTOCOL, { signal: AbortSignal.timeout(5000) }))
  for (let i = 0; i < 3; i++) await client.send({ i })
  await client.close()
  const stream = await within(5000, inbound, 'inbound stream')
  await waitFor(() => stream.remoteWriteStatus === 'closed', 5000, 'remote FIN seen')
  const late = new FramedStream(stream)
  t.same(await within(5000, collect(late), 'late reader'), [{ i: 0 }, { i: 1 }, { i: 2 }])
})

void t.test('an oversized frame aborts the stream with INVALID_MESSAGE', async (t) => {
  const { inbound, dial } = await pair(t)
  const sender = new FramedStream(await dial(), { maxMessageSize: 8 * MiB })
  const receiver = new FramedStream(await within(5000, inbound, 'inbound stream'), { maxMessageSize: 1 * MiB })

  await sender.send({ small: new Uint8Array(10) })
  const big = { blob: new Uint8Array(2 * MiB) }
  const sending = sender.send(big).then(() => 'sent', (err: Error) => err.name)

  const got: unknown[] = []
  const error = await within(5000, (async () => {
    try {
      for await (const msg of receiver) got.push(msg)
    } catch (err) {
      return err
    }
  })(), 'receiver error')
  t.match(error, { code: 'INVALID_MESSAGE', message: /2097\d+-byte frame/ }, 'reader gets INVALID_MESSAGE')
  t.equal(got.length, 1, 'messages before the bad frame were delivered')
  t.equal(receiver.stream.status, 'aborted', 'receiving stream aborted')
  await within(5000, sending, 'sender settles')
  await waitFor(() => sender.stream.status === 'reset', 5000, 'sender sees the reset')
  await t.rejects(sender.send({ more: 1 }), 'sending on a reset stream fails')

  await t.rejects(receiver.send(big), { code: 'PAYLOAD_TOO_LARGE' }, 'the sender refuses frames over its own limit')
})

void t.test('a forged length prefix is refused before its body is buffered', async (t) => {
  const { inbound, dial } = await pair(t)
  const raw = await dial()
  const receiver = new FramedStream(await within(5000, inbound, 'inbound stream'), { maxMessageSize: 1 * MiB })
  raw.send(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f)) // ~4 GiB announced, no body
  await t.rejects(within(5000, receiver.read(), 'read'), { code: 'INVALID_MESSAGE' })

  const { inbound: inbound2, dial: dial2 } = await pair(t)
  const raw2 = await dial2()
  const receiver2 = new FramedStream(await within(5000, inbound2, 'inbound stream'))
  raw2.send(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80))
  await t.rejects(within(5000, receiver2.read(), 'read'), { code: 'INVALID_MESSAGE', message: /prefix is too long/ })

  const { inbound: inbound3, dial: dial3 } = await pair(t)
  const raw3 = await dial3()
  const receiver3 = new FramedStream(await within(5000, inbound3, 'inbound stream'))
  raw3.send(Uint8Array.of(3, 0xff, 0xff, 0xff))
  await t.rejects(within(5000, receiver3.read(), 'read'), { code: 'INVALID_MESSAGE', message: /CBOR/ })

  const { inbound: inbound5, dial: dial5 } = await pair(t)
  const raw5 = await dial5()
  const receiver5 = new FramedStream(await within(5000, inbound5, 'inbound stream'))
  const depth = 500_000
  const nested = new Uint8Array(depth + 1).fill(0x81) // [[[[...]]]]
  nested[depth] = 0
  raw5.send(Uint8Array.of(0xa1, 0xc2, 0x1e)) // varint 500001
  raw5.send(nested)
  await t.rejects(within(5000, receiver5.read(), 'read'), { code: 'INVALID_MESSAGE' }, 'absurd nesting is an invalid message, not a crash')

  const { inbound: inbound4, dial: dial4 } = await pair(t)
  const raw4 = await dial4()
  const receiver4 = new FramedStream(await within(5000, inbound4, 'inbound stream'))
  raw4.send(Uint8Array.of(10, 0x01))
  await raw4.close()
  await t.rejects(within(5000, receiver4.read(), 'read'), { code: 'INVALID_MESSAGE', message: /middle of a frame/ })
})

void t.test('a slow reader applies backpressure instead of buffering everything', async (t) => {
  const { inbound, dial } = await pair(t)
  const sender = new FramedStream(await dial())
  const receiver = new FramedStream(await within(5000, inbound, 'inbound stream'), { readHighWaterMark: 2 * MiB })
  const total = 128
  const chunk = new Uint8Array(MiB).fill(7)
  let sent = 0
  const sending = (async () => {
    for (let i = 0; i < total; i++) {
      await sender.send({ i, chunk })
      sent++
    }
    await sender.close()
  })()

  // Nobody reads for a while: the sender must stall well short of 128 MiB.
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.comment(`sender stalled after ${sent} MiB`)
  t.ok(sent < total / 2, `sender stalled after ${sent} of ${total} MiB while nobody read`)
  t.equal(receiver.stream.status, 'open', 'the stalled stream was not reset')

  let received = 0
  for await (const msg of receiver) {
    const m = msg as { i: number, chunk: Uint8Array }
    if (m.i !== received || m.chunk.byteLength !== MiB) break
    received++
  }
  await within(30_000, sending, 'sender finished')
  t.equal(received, total, 'every message arrived in order once the reader caught up')
})

void t.test('a reader that is always a little slower than the sender never overflows the read buffer', async (t) => {
  // Regression: resuming delivered the buffered data, the reader paused again
  // during that delivery, and resume() then re-opened the window, so the
  // sender ran free until the 20 MiB read buffer limit reset the stream.
  const { inbound, dial } = await pair(t)
  const sender = new FramedStream(await dial(), { maxMessageSize: MiB })
  const receiver = new FramedStream(await within(5000, inbound, 'inbound stream'), { maxMessageSize: MiB })
  const chunk = new Uint8Array(256 * 1024).fill(3)
  const total = 256
  const sending = (async () => {
    for (let i = 0; i < total; i++) await sender.send({ i, chunk })
    await sender.close()
  })()
  let received = 0
  for await (const msg of receiver) {
    if ((msg as { i: number }).i !== received) break
    received++
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  await within(60_000, sending, 'sender finished')
  t.equal(received, total, `all ${total / 4} MiB arrived through a slow reader`)
})
