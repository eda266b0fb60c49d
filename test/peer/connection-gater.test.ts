import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import t from 'tap'
import type { Test } from 'tap'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { startTestPeer, trustEachOther, waitFor, within } from './helpers.ts'
import type { TestPeer } from './helpers.ts'

const PROTOCOL = '/dw-test/echo/1.0.0'

/** Serve a one-message echo on `peer`. */
async function serveEcho (peer: TestPeer): Promise<void> {
  await peer.node.handle(PROTOCOL, async (stream) => {
    const framed = new FramedStream(stream)
    for await (const msg of framed) await framed.send(msg)
    await framed.close()
  })
}

async function echo (from: TestPeer, to: TestPeer, value: unknown): Promise<unknown> {
  const framed = new FramedStream(await from.node.dialProtocol(multiaddr(to.addr), PROTOCOL, { signal: AbortSignal.timeout(5000) }))
  await framed.send(value)
  await framed.close()
  const reply = await within(5000, framed.read(), 'echo reply')
  return reply.value
}

/**
 * Expect `from` to be turned away by `to`. Noise's initiator finishes its
 * handshake before the responder has checked its identity, so the dial may
 * resolve and the connection close a moment later instead of the dial
 * failing outright; either way no protocol stream may get through.
 */
async function expectRefused (t: Test, from: TestPeer, to: TestPeer): Promise<void> {
  const conn = await within(10_000, from.node.dial(multiaddr(to.addr), { signal: AbortSignal.timeout(5000) }), 'dial')
    .catch((err: Error) => { t.comment(`dial refused outright: ${err.name}`) })
  if (conn !== undefined) await waitFor(() => conn.status !== 'open', 5000, 'refused connection closed')
  await t.rejects(within(10_000, echo(from, to, 'let me in'), 'echo attempt'), 'no stream gets through')
}

function connected (a: TestPeer, b: TestPeer): boolean {
  return a.node.getConnections(peerIdFromString(b.peerId)).some(c => c.status === 'open')
}

void t.test('trusted peers connect; an untrusted node is refused and becomes pending; approval lets it in', async (t) => {
  const a = await startTestPeer(t)
  const b = await startTestPeer(t)
  const stranger = await startTestPeer(t)
  await trustEachOther(a, b)
  await serveEcho(a)
  // The stranger trusts a, so only a's gater stands in its way.
  await stranger.book.add(a.addr)

  t.same(await echo(b, a, { bytes: Uint8Array.of(1, 2, 3) }), { bytes: Uint8Array.of(1, 2, 3) }, 'trusted peer talks')

  await expectRefused(t, stranger, a)
  await waitFor(() => a.book.pending().length === 1, 5000, 'pending request recorded')
  const [request] = a.book.pending()
  t.equal(request?.peerId, stranger.peerId, 'pending lists the stranger')
  t.match(request?.addr, new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${stranger.peerId}$`), 'with the address it came from')
  t.match(a.refused[0], { peerId: stranger.peerId, direction: 'inbound' }, 'onRefused was told')
  await waitFor(() => !connected(a, stranger) && !connected(stranger, a), 5000, 'no connection left open')

  // a never dials peers it does not trust, whatever the address.
  await t.rejects(a.node.dial(multiaddr(stranger.addr), { signal: AbortSignal.timeout(5000) }), { name: 'DialDeniedError' })

  await a.book.approve(stranger.peerId)
  t.same(a.book.pending(), [], 'approval settles the request')
  t.same(await echo(stranger, a, 'hello'), 'hello', 'the approved peer connects and talks')
})

void t.test('remove + hangUp cuts an existing connection and keeps the peer out', async (t) => {
  const a = await startTestPeer(t)
  const b = await startTestPeer(t)
  await trustEachOther(a, b)
  await serveEcho(a)
  await serveEcho(b)
  t.equal(await echo(b, a, 1), 1)
  t.ok(connected(a, b), 'connected')

  await a.book.remove(b.peerId)
  t.ok(connected(a, b), 'removing alone does not touch the open connection')
  await within(5000, a.node.hangUp(peerIdFromString(b.peerId)), 'hangUp')
  await waitFor(() => !connected(a, b) && !connected(b, a), 5000, 'connection closed on both ends')

  await expectRefused(t, b, a)
  await t.rejects(within(10_000, echo(a, b, 2), 'dial out'), 'nor does a dial it')
  await waitFor(() => a.book.pending().some(p => p.peerId === b.peerId), 5000, 'its retry shows up as pending')
})
