/**
 * The sending side of the baselines in `bench-blobs.ts`, run as a child
 * process so sender and receiver are separate processes, as two real nodes
 * are. Not meant to be run by hand.
 *
 *   node scripts/bench-blobs-child.ts tcp <port> <bytes> <chunkBytes>
 *   node scripts/bench-blobs-child.ts libp2p <multiaddr> <protocol> <bytes> <chunkBytes>
 *   node scripts/bench-blobs-child.ts framed <multiaddr> <protocol> <bytes> <chunkBytes>
 *
 * `framed` sends the blob protocol's messages (`{t: 'chunk', data}` in CBOR,
 * varint-framed by FramedStream, each send awaited) from memory: the
 * protocol's cost without the disk.
 *
 * Protocol with the parent (IPC): the child connects (and for libp2p opens
 * the stream), sends `{ready}`, waits for `{go}`, sends its bytes honouring
 * backpressure, then sends `{sent, ms}` and waits for `{exit}`. It also exits
 * when the IPC channel goes away, so a parent that dies leaves nothing behind.
 */
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createPeerNode } from '../src/peer/libp2p.ts'
import { FramedStream } from '../src/peer/framed-stream.ts'
import { MAX_BLOB_MESSAGE } from '../src/blobs/transfer/messages.ts'

/** Distinct chunks sent round-robin: content is random, so nothing compresses or repeats within a window. */
const POOL_BYTES = 16 * 1024 * 1024

type FromParent = { t: 'go' } | { t: 'exit' }

if (process.send === undefined) {
  console.error('bench-blobs-child.ts is started by bench-blobs.ts over IPC')
  process.exit(2)
}
process.on('disconnect', () => { process.exit(0) })

const send = (msg: unknown): void => { process.send?.(msg) }
const fromParent = (t: FromParent['t']): Promise<void> => new Promise(resolve => {
  const on = (msg: FromParent): void => {
    if (msg?.t === t) { process.off('message', on); resolve() }
  }
  process.on('message', on)
})

function pool (chunkBytes: number): Uint8Array[] {
  const n = Math.max(1, Math.floor(POOL_BYTES / chunkBytes))
  return Array.from({ length: n }, () => new Uint8Array(randomBytes(chunkBytes)))
}

async function tcpSender (port: number, total: number, chunkBytes: number): Promise<void> {
  const chunks = pool(chunkBytes)
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => { resolve(s) })
    s.once('error', reject)
  })
  socket.setNoDelay(true)
  send({ t: 'ready' })
  await fromParent('go')
  const started = performance.now()
  let sent = 0
  for (let i = 0; sent < total; i++) {
    const chunk = chunks[i % chunks.length] as Uint8Array
    const piece = total - sent >= chunk.length ? chunk : chunk.subarray(0, total - sent)
    sent += piece.length
    if (!socket.write(piece)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => { socket.off('close', onClose); resolve() }
        const onClose = (): void => { socket.off('drain', onDrain); reject(new Error('socket closed while sending')) }
        socket.once('drain', onDrain)
        socket.once('close', onClose)
      })
    }
  }
  await new Promise<void>(resolve => { socket.end(resolve) })
  send({ t: 'sent', ms: performance.now() - started })
  await fromParent('exit')
  socket.destroy()
}

/** Waits for the stream's 'drain' event (not `onDrain()`: see docs/libp2p-notes.md). */
async function drained (stream: Stream): Promise<void> {
  while (stream.writableNeedsDrain) {
    if (stream.status !== 'open') throw new Error(`stream is ${stream.status}`)
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => { stream.removeEventListener('close', onClose); resolve() }
      const onClose = (): void => { stream.removeEventListener('drain', onDrain); reject(new Error('stream closed while sending')) }
      stream.addEventListener('drain', onDrain, { once: true })
      stream.addEventListener('close', onClose, { once: true })
    })
  }
}

async function libp2pSender (address: string, protocol: string, total: number, chunkBytes: number, framed: boolean): Promise<void> {
  const chunks = pool(chunkBytes)
  // The same libp2p stack and settings as a dw-mesh node (TCP, Noise, Yamux
  // with a 16 MiB window); the gater lets everything through.
  const node = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], gater: {} })
  try {
    const stream = await node.dialProtocol(multiaddr(address), protocol, { signal: AbortSignal.timeout(15_000) })
    const messages = framed ? new FramedStream(stream, { maxMessageSize: MAX_BLOB_MESSAGE }) : undefined
    send({ t: 'ready' })
    await fromParent('go')
    const started = performance.now()
    let sent = 0
    for (let i = 0; sent < total; i++) {
      const chunk = chunks[i % chunks.length] as Uint8Array
      const piece = total - sent >= chunk.length ? chunk : chunk.subarray(0, total - sent)
      sent += piece.length
      if (messages !== undefined) {
        await messages.send({ t: 'chunk', data: piece })
      } else if (!stream.send(piece)) {
        await drained(stream)
      }
    }
    await stream.close({ signal: AbortSignal.timeout(60_000) })
    send({ t: 'sent', ms: performance.now() - started })
    await fromParent('exit')
  } finally {
    await node.stop()
  }
}

const [mode, ...args] = process.argv.slice(2)
try {
  if (mode === 'tcp') {
    await tcpSender(Number(args[0]), Number(args[1]), Number(args[2]))
  } else if (mode === 'libp2p' || mode === 'framed') {
    await libp2pSender(String(args[0]), String(args[1]), Number(args[2]), Number(args[3]), mode === 'framed')
  } else {
    throw new Error(`unknown mode ${String(mode)}`)
  }
  process.exit(0)
} catch (err) {
  send({ t: 'error', message: (err as Error).stack ?? String(err) })
  console.error(err)
  process.exit(1)
}
