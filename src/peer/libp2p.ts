import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'

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
 * The gater passed in is used as is. libp2p only installs its own default
 * gater (which refuses private addresses in browsers) when none is given,
 * and Node's default allows everything, so LAN and loopback peers dial fine
 * as long as `gater.denyDialMultiaddr` does not refuse them.
 */
export async function createPeerNode (options: PeerNodeOptions): Promise<PeerNode> {
  return await createLibp2p<PeerServices>({
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
    peerDiscovery: [],
    services: {
      identify: identify(),
      ping: ping()
    },
    start: true
  })
}
