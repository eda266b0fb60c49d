/**
 * The nftables and tc text that puts the nemesis's faults into one node's
 * namespace. Pure functions: `netns-network.ts` feeds their output to
 * `nft -f -` and `tc -batch -`.
 *
 * Each node namespace has one interface, `eth0`, and:
 * - an nft table `inet dwsim` whose `input`/`output` chains are rebuilt in
 *   one transaction on every change (flush + add is atomic under `nft -f`),
 *   with two named counters that survive the rebuilds;
 * - an HTB root qdisc on eth0 with one class per other node, picked by a
 *   u32 filter on the destination address, built once; a link fault only
 *   changes that class's rate (and its netem leaf when the kernel has one),
 *   so a change never drops what is queued on the other links.
 */
import type { LinkFaults } from './network.ts'

export const TABLE = 'dwsim'
export const DEV = 'eth0'

/** A class's rate when the link has no throttle: far above what the nodes send. */
const OPEN_RATE = '10gbit burst 2m cburst 2m quantum 60000'

/**
 * The proxy's `drop` fault destroys each live connection with a
 * probability per second (0.2-2). A namespace has no connection to
 * destroy, so it loses packets instead: 5 % per unit, 1-10 % over the
 * nemesis's range. Enough loss to stall TCP into retransmit back-off,
 * not so much that the link is a partition in disguise.
 */
export function lossPercent (dropPerSec: number): number {
  return Math.min(100, Math.max(1, Math.round(dropPerSec * 5)))
}

/**
 * Without netem there is no way to hold packets back for a fixed time, so
 * a delay of d ms becomes a throttle at which a 16 KiB burst (the proxy's
 * chunk) takes d ms to leave: 20 ms -> 800 KiB/s, 400 ms -> 40 KiB/s.
 * Small messages get through nearly at once; bulk transfers slow down.
 */
export function delayAsThrottleBps (delayMs: number): number {
  return Math.max(1024, Math.round(16 * 1024 * 1000 / Math.max(1, delayMs)))
}

/** What one directed link does in netns mode, derived from its faults. */
export interface LinkShape {
  /** Bytes per second on i's egress to j, or undefined for an open link. */
  rateBps: number | undefined
  /** netem delay (ms), only when the kernel has netem. */
  netemDelayMs: number | undefined
  /** Random loss (percent) on i's egress to j. */
  lossPercent: number | undefined
}

export function linkShape (faults: LinkFaults, netem: boolean): LinkShape {
  const rates: number[] = []
  if (faults.throttleBps !== undefined && faults.throttleBps > 0) rates.push(faults.throttleBps)
  const delay = faults.delayMs !== undefined && faults.delayMs > 0 ? faults.delayMs : undefined
  if (delay !== undefined && !netem) rates.push(delayAsThrottleBps(delay))
  return {
    rateBps: rates.length > 0 ? Math.min(...rates) : undefined,
    netemDelayMs: delay !== undefined && netem ? delay : undefined,
    lossPercent: faults.dropPerSec !== undefined && faults.dropPerSec > 0 ? lossPercent(faults.dropPerSec) : undefined
  }
}

/** How a fault is realised in netns mode, for the timeline: never a silent no-op. */
export function describeShape (shape: LinkShape, faults: LinkFaults, netem: boolean): string {
  const parts: string[] = []
  if (shape.lossPercent !== undefined) parts.push(`${shape.lossPercent}% packet loss (nft)`)
  if (shape.netemDelayMs !== undefined) parts.push(`netem delay ${shape.netemDelayMs} ms`)
  if (faults.delayMs !== undefined && faults.delayMs > 0 && !netem) parts.push(`no netem in this kernel: delay as a ${Math.round(delayAsThrottleBps(faults.delayMs) / 1024)} KiB/s throttle (tc htb)`)
  else if (shape.rateBps !== undefined) parts.push(`${Math.round(shape.rateBps / 1024)} KiB/s (tc htb)`)
  return parts.join(', ')
}

/** Class id (hex minor) of the link to node j; also the netem leaf's handle major. */
export function classMinor (j: number): string {
  return (j + 16).toString(16)
}

/** The table, made once per namespace. */
export function nftTable (): string {
  return [
    `table inet ${TABLE} {`,
    '  counter cut {}',
    '  counter loss {}',
    '  chain input { type filter hook input priority 0; policy accept; }',
    '  chain output { type filter hook output priority 0; policy accept; }',
    '}',
    ''
  ].join('\n')
}

/**
 * The chains for one namespace, in one transaction. `cutPeers` are the
 * addresses of the nodes this one is partitioned from: their packets are
 * dropped both ways, silently (no RST, no ICMP), as a real partition does.
 * Only node addresses are ever named, so the simulator's control address
 * stays reachable. `loss` is random loss on egress to one peer.
 */
export function nftRules (cutPeers: string[], loss: Array<{ ip: string, percent: number }>): string {
  const lines = [`flush chain inet ${TABLE} input`, `flush chain inet ${TABLE} output`]
  if (cutPeers.length > 0) {
    const set = `{ ${cutPeers.join(', ')} }`
    lines.push(`add rule inet ${TABLE} input ip saddr ${set} counter name cut drop`)
    lines.push(`add rule inet ${TABLE} output ip daddr ${set} counter name cut drop`)
  }
  for (const { ip, percent } of loss) {
    lines.push(`add rule inet ${TABLE} output ip daddr ${ip} numgen random mod 100 < ${percent} counter name loss drop`)
  }
  return lines.join('\n') + '\n'
}

/** The HTB tree for one namespace: one open class and filter per other node. */
export function tcSetup (peers: Array<{ node: number, ip: string }>): string {
  const lines = [`qdisc add dev ${DEV} root handle 1: htb`]
  for (const { node, ip } of peers) {
    const minor = classMinor(node)
    lines.push(`class add dev ${DEV} parent 1: classid 1:${minor} htb rate ${OPEN_RATE}`)
    lines.push(`filter add dev ${DEV} parent 1: protocol ip prio 1 u32 match ip dst ${ip}/32 flowid 1:${minor}`)
  }
  return lines.join('\n') + '\n'
}

/**
 * Re-rates the class of the link to node j; with netem, (re)places its
 * leaf (a zero delay when the link has none, so the change is a replace).
 */
export function tcLink (j: number, shape: LinkShape, netem: boolean): string {
  const minor = classMinor(j)
  const rate = shape.rateBps !== undefined ? `${shape.rateBps * 8}bit ceil ${shape.rateBps * 8}bit quantum 1514` : OPEN_RATE
  const lines = [`class change dev ${DEV} parent 1: classid 1:${minor} htb rate ${rate}`]
  if (netem) lines.push(`qdisc replace dev ${DEV} parent 1:${minor} handle ${minor}: netem delay ${shape.netemDelayMs ?? 0}ms`)
  return lines.join('\n') + '\n'
}

/** Sums the `Sent N bytes` lines of `tc -s class show` (this tc has no JSON for HTB classes). */
export function sentBytes (tcStats: string): number {
  let total = 0
  for (const m of tcStats.matchAll(/Sent (\d+) bytes/g)) total += Number(m[1])
  return total
}

/** The `Sent N bytes M pkt` of one class in `tc -s class show`: bytes as HTB accounts them (link-layer frames, GSO split into segments). */
export function classCounters (tcStats: string): { bytes: number, packets: number } {
  const m = /Sent (\d+) bytes (\d+) pkt/.exec(tcStats)
  return { bytes: Number(m?.[1] ?? 0), packets: Number(m?.[2] ?? 0) }
}

/** Reads the two named counters out of `nft -j list counters`. */
export function nftCounters (json: string): { cut: number, loss: number } {
  const out = { cut: 0, loss: 0 }
  try {
    const parsed = JSON.parse(json) as { nftables?: Array<{ counter?: { name: string, packets: number } }> }
    for (const item of parsed.nftables ?? []) {
      if (item.counter?.name === 'cut') out.cut += item.counter.packets
      if (item.counter?.name === 'loss') out.loss += item.counter.packets
    }
  } catch {}
  return out
}
