import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { coalesceWrites } from './coalesce-writes.ts'
import type { Identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import { DwError } from '../errors.ts'
import { dialFailure } from './link-failures.ts'

/** The services every dw-mesh libp2p node runs. */
export type PeerServices = {
  identify: Identify
  ping: Ping
}

/** A started dw-mesh libp2p node. */
export type PeerNode = Libp2p<PeerServices>

export interface PeerNodeOptions {
  /** The node's Ed25519 identity (see `loadOrCreateIdentity`). */
  privateKey: PrivateKey
  /** Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/4001`; `/tcp/0` picks a free port. */
  listen: string[]
  /** Addresses to advertise instead of the listen addresses (NAT, port forwards). */
  announce?: string[]
  /** Decides which peers may connect; normally `createConnectionGater(book, ...)`. */
  gater: ConnectionGater
  /** Upper bound on open connections before libp2p prunes. @default 300 */
  maxConnections?: number
}

/**
 * Yamux lets a stream's receive window grow to this size. A `FramedStream`
 * pauses its stream when its reader falls behind; the sender may still have
 * a full window in flight, which lands in the stream's read buffer. The read
 * buffer limit must therefore exceed the window, or a slow reader would get
 * its stream reset instead of slowing the sender down.
 */
const MAX_STREAM_WINDOW = 16 * 1024 * 1024
const MAX_READ_BUFFER = MAX_STREAM_WINDOW + 4 * 1024 * 1024

/**
 * Build and start the node's libp2p instance: TCP, Noise, Yamux, identify
 * and ping, nothing else. Peers are known only from the peer book, so there
 * is no DHT, no bootstrap list, no relay, no discovery: the gater decides
 * every connection.
 *
 * On Node libp2p uses the gater as given (its browser build fills in a
 * `denyDialMultiaddr` that refuses private addresses), so LAN and loopback
 * peers dial fine unless the gater itself refuses them. Failing to listen
 * is a CONFIG_INVALID error and leaves nothing running.
 */
export async function createPeerNode (options: PeerNodeOptions): Promise<PeerNode> {
  for (const addr of [...options.listen, ...(options.announce ?? [])]) {
    try {
      multiaddr(addr)
    } catch (err) {
      throw new DwError('CONFIG_INVALID', `"${addr}" is not a valid multiaddr (expected e.g. /ip4/0.0.0.0/tcp/4001)`, { cause: err })
    }
  }
  const node = await createLibp2p<PeerServices>({
    privateKey: options.privateKey,
    addresses: {
      listen: options.listen,
      announce: options.announce ?? []
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({
      streamOptions: {
        maxStreamWindowSize: MAX_STREAM_WINDOW,
        maxReadBufferLength: MAX_READ_BUFFER
      }
    })],
    connectionGater: options.gater,
    connectionManager: {
      maxConnections: options.maxConnections ?? 300
    },
    // libp2p pings every peer every 10 s and cuts a connection whose ping
    // takes longer than its adaptive timeout (5 s at first). A busy node, or a
    // thin link with a blob transfer queued ahead of the ping, is slow, not
    // dead: the cut would abort the sync or transfer in progress. A minute
    // still finds a dead link well before TCP would. Each ping is a new
    // stream (a multistream-select round, 32 bytes each way, two closes):
    // about 2 kB on the wire with its packets' headers. Every 10 s, libp2p's
    // default, on each connection from each side, that was 1.1 kB/s on an
    // idle link, 95 MB a day on a metered one; once a minute it is a sixth.
    connectionMonitor: {
      pingInterval: 60_000,
      pingTimeout: { minTimeout: 30_000, maxTimeout: 60_000 }
    },
    peerDiscovery: [],
    services: {
      identify: identify(),
      // The responder side has its own limit (10 s by default): it resets a
      // ping stream whose echo waits longer, which on a thin link with a file
      // queued ahead is the norm, and the asker's monitor then cuts the whole
      // connection (bench:link saw 8-10 cuts per 10,000-record sync at 1 Mbit/s).
      // As patient as the monitor itself.
      ping: ping({ timeout: 60_000 })
    },
    start: false
  })
  // Each turn's writes to a TCP connection leave as one packet, not one per chunk (coalesce-writes.ts).
  node.addEventListener('connection:open', evt => { coalesceWrites(evt.detail) })
  try {
    await node.start()
  } catch (err) {
    // A failed start (port in use) leaves timers and sockets behind that
    // would keep the process alive.
    await Promise.resolve(node.stop()).catch(() => {})
    throw new DwError('CONFIG_INVALID', `libp2p could not start: ${listenFailures(err)}`, { cause: err })
  }
  // Every dial error, wherever it is dialled from, says in words why the
  // peer could not be reached (PEER_UNREACHABLE) or hung up (PEER_REFUSED),
  // with the address tried: libp2p's own are socket codes or a bare Event.
  const dial = node.dial.bind(node)
  node.dial = async (peer, options) => {
    try {
      return await dial(peer, options)
    } catch (err) {
      // This node's own gater said no: that is about our peer book, not the peer.
      if (err instanceof Error && err.name === 'DialDeniedError') throw err
      throw dialFailure(err, String(Array.isArray(peer) ? peer[0] : peer), options?.signal)
    }
  }
  return node
}

/** libp2p lists each failed address on its own line, amid stack traces. */
function listenFailures (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const failures = message.split('\n').map(line => line.trim()).filter(line => line.startsWith('/'))
  return failures.length > 0 ? failures.join('; ') : message.split('\n')[0] ?? message
}
