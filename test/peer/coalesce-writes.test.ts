// libp2p's TCP connection wrote each chunk of a send to its socket on its
// own, with TCP_NODELAY: a small message on an idle link left as up to four
// packets (Noise's 2-byte length prefix alone in one). coalesce-writes.ts
// makes one turn's writes one socket write. Counted here at the socket, as
// the writes the kernel is handed (each a packet when it is small).
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Socket } from 'node:net'
import t from 'tap'
import { createPeerNode, type PeerNode } from '../../src/peer/libp2p.ts'

const PROTOCOL = '/dw-test/coalesce/1.0.0'
const MESSAGES = 20

async function pair (t: any): Promise<[PeerNode, PeerNode]> {
  const a = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], gater: {} })
  const b = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], gater: {} })
  t.teardown(async () => { await a.stop(); await b.stop() })
  return [a, b]
}

/** Counts the writes a socket hands the kernel (libuv: one per _write or _writev call). */
function countWrites (socket: Socket): () => number {
  let writes = 0
  const s = socket as unknown as { _write: (...a: unknown[]) => unknown, _writev?: (...a: unknown[]) => unknown }
  const write = s._write.bind(socket)
  s._write = (...args: unknown[]) => { writes += 1; return write(...args) }
  if (s._writev !== undefined) {
    const writev = s._writev.bind(socket)
    s._writev = (...args: unknown[]) => { writes += 1; return writev(...args) }
  }
  return () => writes
}

t.test('a small message on a stream leaves as one socket write, not one per chunk', async t => {
  const [a, b] = await pair(t)
  let received = 0
  let all: () => void = () => {}
  const arrived = new Promise<void>(resolve => { all = resolve })
  await b.handle(PROTOCOL, stream => {
    stream.addEventListener('message', evt => {
      received += evt.data.byteLength
      if (received >= MESSAGES * 40) all()
    })
  })
  const stream = await a.dialProtocol(b.getMultiaddrs()[0] as any, PROTOCOL)
  const connection = a.getConnections(b.peerId)[0] as unknown as { maConn: { socket: Socket } }
  const writes = countWrites(connection.maConn.socket)
  for (let i = 0; i < MESSAGES; i++) {
    // One message a turn, as a live sync sends them: nothing else to coalesce with.
    await new Promise(resolve => setTimeout(resolve, 5))
    stream.send(new Uint8Array(40).fill(i))
  }
  await Promise.race([arrived, new Promise((resolve, reject) => setTimeout(() => reject(new Error('messages did not all arrive within 10 s')), 10_000))])
  t.equal(received, MESSAGES * 40, 'every byte arrived')
  // Each message is a Yamux header and its data, each a Noise frame of two chunks: four writes before.
  t.ok(writes() <= MESSAGES + 2, `${writes()} socket writes for ${MESSAGES} messages`)
})
