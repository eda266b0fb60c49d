import { connect } from 'node:net'
import type { LinkFaults, NetnsNetworkStats, Network } from './network.ts'
import { freeSubnet, listNamespaces, netnsNames, sweepStale, type NetnsNames } from './netns-host.ts'
import type { NetnsTools } from './netns-preflight.ts'
import { DEV, TABLE, classCounters, classMinor, describeShape, linkShape, nftCounters, nftRules, nftTable, sentBytes, tcLink, tcSetup } from './netns-rules.ts'
import { sh, shSync } from './shell.ts'

/** Every node listens on this port on its own address; namespaces keep them apart. */
const P2P_PORT = 4001
const CONTROL_HOST = 254

const isClean = (f: LinkFaults): boolean => !((f.delayMs ?? 0) > 0 || (f.throttleBps ?? 0) > 0 || (f.dropPerSec ?? 0) > 0)

/**
 * Real network partitions (root only). Node i runs in namespace
 * `dwsim-<pid>-<seq>-n<i>` with one veth, `eth0`, at 10.A.B.(i+1)/24; the
 * other ends sit on a bridge in a hub namespace, together with a veth from
 * the root namespace at 10.A.B.254 through which the simulator reaches
 * every node's HTTP API. Nodes dial each other's real addresses.
 *
 * - partition: nft drops in both namespaces of a pair (input by source,
 *   output by destination): packets vanish, no RST, no ICMP, so live
 *   connections hang until libp2p's own liveness checks give up;
 * - loss: nft `numgen random` drop on i's egress to j;
 * - throttle: the HTB class for j on i's eth0; delay: netem under that
 *   class when the kernel has it, otherwise a throttle (logged as such);
 * - kill and pause stay process signals (`ip netns exec` execs the node,
 *   so the child pid is the node's).
 *
 * Every namespace and the root-side veth are removed by close(), or by
 * destroyNow() from an exit hook; a later run sweeps up after a run that
 * could do neither.
 */
export class NetnsNetwork implements Network {
  readonly mode = 'netns'
  readonly #tools: NetnsTools
  readonly #log: (line: string) => void
  readonly #names: NetnsNames
  #subnet = ''
  #n = 0
  #netem = false
  /** Namespaces created so far, so a half-built network is still removed. */
  readonly #made: string[] = []
  #rootLink = false
  /** #cut[i][j]: the pair is partitioned (symmetric). */
  #cut: boolean[][] = []
  /** #faults[i][j]: faults of the directed link i→j. */
  #faults: LinkFaults[][] = []
  /** One queue of host commands per node namespace, so rule rewrites never interleave. */
  #queues: Array<Promise<void>> = []

  constructor (tools: NetnsTools, log: (line: string) => void) {
    this.#tools = tools
    this.#log = log
    this.#names = netnsNames()
  }

  get names (): NetnsNames { return this.#names }
  get netem (): boolean { return this.#netem }

  ip (i: number): string { return `${this.#subnet}.${i + 1}` }

  async setUp (n: number): Promise<void> {
    const { ip } = this.#tools
    const { hub, rootLink } = this.#names
    this.#n = n
    this.#cut = Array.from({ length: n }, () => Array.from({ length: n }, () => false))
    this.#faults = Array.from({ length: n }, () => Array.from({ length: n }, () => ({})))
    this.#queues = Array.from({ length: n }, async () => {})
    await sweepStale(this.#tools, this.#log)
    this.#subnet = await freeSubnet(this.#tools)
    const control = `${this.#subnet}.${CONTROL_HOST}`

    this.#made.push(hub)
    await sh(ip, ['netns', 'add', hub])
    await sh(ip, ['-n', hub, 'link', 'set', 'lo', 'up'])
    await sh(ip, ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge'])
    await sh(ip, ['-n', hub, 'link', 'set', 'br0', 'up'])
    this.#rootLink = true
    await sh(ip, ['link', 'add', rootLink, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', hub])
    await sh(ip, ['-n', hub, 'link', 'set', 'uplink', 'master', 'br0', 'up'])
    await sh(ip, ['addr', 'add', `${control}/24`, 'dev', rootLink])
    await sh(ip, ['link', 'set', rootLink, 'up'])

    await Promise.all(Array.from({ length: n }, async (_, i) => { await this.#addNode(i) }))
    this.#netem = await this.#probeNetem()
    await Promise.all(Array.from({ length: n }, async (_, i) => { await this.#reachable(i) }))
    this.#log(`netns: ${n} namespaces ${this.#names.prefix}-n0..n${n - 1} on ${this.#subnet}.0/24 (bridge in ${hub}, simulator at ${control} on ${rootLink}); ` +
      `partitions and loss by nft, throttles by tc htb, delay ${this.#netem ? 'by netem' : 'as a throttle (this kernel has no netem qdisc)'}`)
  }

  async #addNode (i: number): Promise<void> {
    const { ip } = this.#tools
    const ns = this.#names.node(i)
    this.#made.push(ns)
    await sh(ip, ['netns', 'add', ns])
    await sh(ip, ['link', 'add', DEV, 'netns', ns, 'type', 'veth', 'peer', 'name', `n${i}`, 'netns', this.#names.hub])
    await sh(ip, ['-n', this.#names.hub, 'link', 'set', `n${i}`, 'master', 'br0', 'up'])
    await sh(ip, ['-n', ns, 'addr', 'add', `${this.ip(i)}/24`, 'dev', DEV])
    await sh(ip, ['-n', ns, 'link', 'set', 'lo', 'up'])
    await sh(ip, ['-n', ns, 'link', 'set', DEV, 'up'])
    await this.#inNs(i, this.#tools.nft, ['-f', '-'], nftTable())
    const peers = Array.from({ length: this.#n }, (_, j) => j).filter(j => j !== i).map(j => ({ node: j, ip: this.ip(j) }))
    await this.#inNs(i, this.#tools.tc, ['-batch', '-'], tcSetup(peers))
  }

  /** netem is a module many kernels lack; try it once on the hub's loopback. */
  async #probeNetem (): Promise<boolean> {
    const { ip, tc } = this.#tools
    try {
      await sh(ip, ['netns', 'exec', this.#names.hub, tc, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'])
      await sh(ip, ['netns', 'exec', this.#names.hub, tc, 'qdisc', 'del', 'dev', 'lo', 'root']).catch(() => {})
      return true
    } catch {
      return false
    }
  }

  /**
   * Nothing listens yet, so a reachable node address refuses at once; a
   * timeout means the path from the root namespace is broken (a host
   * firewall, say), which would otherwise surface as nodes that never start.
   */
  async #reachable (i: number): Promise<void> {
    const outcome = await new Promise<string>(resolve => {
      const socket = connect({ host: this.ip(i), port: P2P_PORT, timeout: 3000 })
      socket.once('connect', () => { socket.destroy(); resolve('ok') })
      socket.once('error', err => { resolve((err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'ok' : err.message) })
      socket.once('timeout', () => { socket.destroy(); resolve('timed out') })
    })
    if (outcome !== 'ok') throw new Error(`netns: ${this.ip(i)} (node ${i}) is not reachable from the root namespace: ${outcome}`)
  }

  httpAddress (i: number): string { return `${this.ip(i)}:0` }
  listenAddress (i: number): string { return `/ip4/${this.ip(i)}/tcp/${P2P_PORT}` }
  dialAddress (_i: number, j: number): string { return `/ip4/${this.ip(j)}/tcp/${P2P_PORT}` }
  commandPrefix (i: number): string[] { return [this.#tools.ip, 'netns', 'exec', this.#names.node(i)] }

  async setTopology (connected: (i: number, j: number) => boolean): Promise<void> {
    const changed = new Set<number>()
    for (let i = 0; i < this.#n; i++) {
      for (let j = i + 1; j < this.#n; j++) {
        const cut = !(connected(i, j) && connected(j, i))
        if (this.#cut[i]?.[j] === cut) continue
        ;(this.#cut[i] as boolean[])[j] = cut
        ;(this.#cut[j] as boolean[])[i] = cut
        changed.add(i)
        changed.add(j)
      }
    }
    await Promise.all([...changed].map(async i => { await this.#enqueue(i, async () => { await this.#writeNft(i) }) }))
  }

  async setLinkFaults (i: number, j: number, faults: LinkFaults): Promise<void> {
    const row = this.#faults[i]
    if (row === undefined || i === j || j >= this.#n) return
    const before = linkShape(row[j] ?? {}, this.#netem)
    row[j] = { ...faults }
    const after = linkShape(faults, this.#netem)
    await this.#enqueue(i, async () => {
      if (before.lossPercent !== after.lossPercent) await this.#writeNft(i)
      if (before.rateBps !== after.rateBps || before.netemDelayMs !== after.netemDelayMs) {
        await this.#inNs(i, this.#tools.tc, ['-batch', '-'], tcLink(j, after, this.#netem))
      }
    })
  }

  realises (faults: LinkFaults): string {
    return describeShape(linkShape(faults, this.#netem), faults, this.#netem)
  }

  async clearFaults (): Promise<void> {
    const jobs: Array<Promise<void>> = []
    this.#faults.forEach((row, i) => { row.forEach((f, j) => { if (!isClean(f)) jobs.push(this.setLinkFaults(i, j, {})) }) })
    await Promise.all(jobs)
  }

  async stats (): Promise<NetnsNetworkStats> {
    const total: NetnsNetworkStats = { mode: 'netns', cutPackets: 0, lossPackets: 0, linkBytes: 0, delay: this.#netem ? 'netem' : 'throttle' }
    await Promise.all(Array.from({ length: this.#n }, async (_, i) => {
      const counters = nftCounters(await this.#inNs(i, this.#tools.nft, ['-j', 'list', 'counters', 'table', 'inet', TABLE]).catch(() => ''))
      total.cutPackets += counters.cut
      total.lossPackets += counters.loss
      total.linkBytes += sentBytes(await this.#inNs(i, this.#tools.tc, ['-s', 'class', 'show', 'dev', DEV]).catch(() => ''))
    }))
    return total
  }

  /**
   * What node i has put on the wire towards node j: its HTB class's
   * counters, so every frame counts (TCP/IP headers, retransmissions,
   * acknowledgements), after the loss rule and never the simulator's own
   * HTTP traffic, which no class matches.
   */
  async linkCounters (i: number, j: number): Promise<{ bytes: number, packets: number }> {
    return classCounters(await this.#inNs(i, this.#tools.tc, ['-s', 'class', 'show', 'dev', DEV, 'classid', `1:${classMinor(j)}`]))
  }

  /**
   * Deleting a namespace only unmounts its name while a process is inside,
   * so whatever still runs there is killed first (the cluster has normally
   * stopped every node by now). Deleting the root-side veth takes its hub
   * end with it. What could not be removed stays listed for destroyNow().
   */
  async close (): Promise<void> {
    await Promise.allSettled(this.#queues)
    const { ip } = this.#tools
    const problems: string[] = []
    if (this.#rootLink) {
      await sh(ip, ['link', 'delete', this.#names.rootLink]).catch((err: Error) => { if (!err.message.includes('Cannot find device')) problems.push(err.message) })
      this.#rootLink = false
    }
    const existing = new Set(await listNamespaces(this.#tools).catch(() => this.#made))
    for (const ns of [...this.#made].reverse()) {
      if (existing.has(ns)) {
        const pids = (await sh(ip, ['netns', 'pids', ns]).catch(() => '')).split('\n').filter(p => /^\d+$/.test(p))
        for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
        const deleted = await sh(ip, ['netns', 'delete', ns]).then(() => true, (err: Error) => { problems.push(err.message); return false })
        if (!deleted) continue
      }
      this.#made.splice(this.#made.indexOf(ns), 1)
    }
    if (problems.length > 0) throw new Error(`netns clean-up: ${problems.join('; ')}`)
  }

  destroyNow (): void {
    const { ip } = this.#tools
    if (this.#rootLink) shSync(ip, ['link', 'delete', this.#names.rootLink])
    this.#rootLink = false
    for (const ns of this.#made.splice(0).reverse()) shSync(ip, ['netns', 'delete', ns])
  }

  async #writeNft (i: number): Promise<void> {
    const cut: string[] = []
    const loss: Array<{ ip: string, percent: number }> = []
    for (let j = 0; j < this.#n; j++) {
      if (j === i) continue
      if (this.#cut[i]?.[j] === true) cut.push(this.ip(j))
      const percent = linkShape(this.#faults[i]?.[j] ?? {}, this.#netem).lossPercent
      if (percent !== undefined) loss.push({ ip: this.ip(j), percent })
    }
    await this.#inNs(i, this.#tools.nft, ['-f', '-'], nftRules(cut, loss))
  }

  async #inNs (i: number, command: string, args: string[], input?: string): Promise<string> {
    return await sh(this.#tools.ip, ['netns', 'exec', this.#names.node(i), command, ...args], input !== undefined ? { input } : {})
  }

  /** Runs after the namespace's earlier jobs, failed or not; the rules are read from the state when the job runs. */
  async #enqueue (i: number, job: () => Promise<void>): Promise<void> {
    const run = (this.#queues[i] ?? Promise.resolve()).catch(() => {}).then(job)
    this.#queues[i] = run
    await run
  }
}
