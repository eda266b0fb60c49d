/**
 * How the simulated nodes reach each other, and how the nemesis breaks it.
 * The cluster owns the node processes; a Network owns everything between
 * them. Two implementations:
 *
 * - `ProxyNetwork` (default, unprivileged): every node on 127.0.0.1, one
 *   fault-injecting TCP proxy per directed link (`tcp-proxy.ts`);
 * - `NetnsNetwork` (`--netns`, root): every node in its own network
 *   namespace on a bridge, cut with nftables and shaped with tc
 *   (`netns-network.ts`).
 *
 * Links are directed: link (i, j) is the way node i reaches node j.
 */
export interface Network {
  readonly mode: 'proxy' | 'netns'

  /** Builds whatever links `nodes` nodes need; before any node is initialised. */
  setUp: (nodes: number) => Promise<void>

  /** `dw init --http` for node i (HOST:PORT; port 0 lets the node choose). */
  httpAddress: (i: number) => string
  /** `dw init --listen` for node i: a fixed port, so a restarted node is where its peers expect it. */
  listenAddress: (i: number) => string
  /** Where node i dials node j, as a multiaddr without the `/p2p/<id>` suffix. */
  dialAddress: (i: number, j: number) => string
  /** Words put in front of node i's command line (e.g. `ip netns exec <ns>`); they must exec, so the child pid is the node's. */
  commandPrefix: (i: number) => string[]

  /** Which pairs may talk: a pair is cut unless `connected` holds both ways. */
  setTopology: (connected: (i: number, j: number) => boolean) => Promise<void>
  /** Replaces the faults on link (i, j); `{}` clears them. */
  setLinkFaults: (i: number, j: number, faults: LinkFaults) => Promise<void>
  /** How this network carries out `faults`, for the timeline ('' when it does so literally). */
  realises: (faults: LinkFaults) => string
  /** Every link clean (the topology is left as it is). */
  clearFaults: () => Promise<void>

  stats: () => Promise<NetworkStats>
  /** Removes everything the network made; the nodes are already stopped. */
  close: () => Promise<void>
  /** Exit-hook variant of close: synchronous, best effort, never throws. */
  destroyNow: () => void
}

/** How a link misbehaves; every field optional, all off by default. */
export interface LinkFaults {
  /** Added latency, in each direction for the proxy, on i's egress to j for netns (milliseconds). */
  delayMs?: number
  /** Bandwidth cap (bytes per second). */
  throttleBps?: number
  /** Probability per second that each live connection is destroyed (proxy); mapped to packet loss in netns mode. */
  dropPerSec?: number
}

export interface ProxyNetworkStats {
  mode: 'proxy'
  accepted: number
  refused: number
  dropped: number
  bytes: number
}

export interface NetnsNetworkStats {
  mode: 'netns'
  /** Packets dropped by partition rules (both directions, every namespace). */
  cutPackets: number
  /** Packets dropped by the random-loss rules. */
  lossPackets: number
  /** Bytes sent through the per-link tc classes (shaped or not). */
  linkBytes: number
  /** Whether delay ran as netem delay or, with no netem in the kernel, as a throttle. */
  delay: 'netem' | 'throttle'
}

export type NetworkStats = ProxyNetworkStats | NetnsNetworkStats
