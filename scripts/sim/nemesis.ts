import { sleep } from './client.ts'
import type { Cluster } from './cluster.ts'
import type { LinkFaults } from './network.ts'
import type { Prng } from './prng.ts'

export type Link = [number, number]

export type Fault =
  | { kind: 'halves', a: number[], b: number[] }
  | { kind: 'isolate', node: number }
  | { kind: 'bridge', a: number[], b: number[], bridge: number }
  | { kind: 'ring', order: number[] }
  | { kind: 'kill', node: number }
  | { kind: 'pause', node: number }
  | { kind: 'delay', links: Link[], ms: number }
  | { kind: 'drop', links: Link[], perSec: number }
  | { kind: 'throttle', links: Link[], bps: number }
  | { kind: 'lose-record', node: number }
  | { kind: 'restore', node: number }

export interface Step {
  index: number
  fault: Fault
  /** How long the step lasts at least, with the workload running. */
  holdMs: number
  /** The fault is undone at the start of step index + span (or at the final heal). */
  span: number
}

export type Injection = 'lose-record'

/** Events of a restore step: the backup at its start, the restore at its end. */
export type RestorePhase = 'backup' | 'restore'

const TOPOLOGY = new Set(['halves', 'isolate', 'bridge', 'ring'])

function describeFault (f: Fault): string {
  switch (f.kind) {
    case 'halves': return `split {${f.a.join(',')}} | {${f.b.join(',')}}`
    case 'isolate': return `isolate node ${f.node}`
    case 'bridge': return `bridge: {${f.a.join(',')}} - ${f.bridge} - {${f.b.join(',')}}`
    case 'ring': return `ring ${f.order.join('-')}-${f.order[0] as number}`
    case 'kill': return `SIGKILL node ${f.node}`
    case 'pause': return `SIGSTOP node ${f.node}`
    case 'delay': return `delay ${f.ms} ms on ${f.links.length} links`
    case 'drop': return `drop connections ${f.perSec}/s on ${f.links.length} links`
    case 'throttle': return `throttle ${Math.round(f.bps / 1024)} KiB/s on ${f.links.length} links`
    case 'lose-record': return `INJECTED: lose one record from node ${f.node}'s LevelDB`
    case 'restore': return `node ${f.node} out of the workload; online backup (restored from it at the end of the step)`
  }
}
export { describeFault }

/** The link faults a delay, drop or throttle step puts on each of its links. */
function linkFaultsOf (f: Fault): LinkFaults | undefined {
  switch (f.kind) {
    case 'delay': return { delayMs: f.ms }
    case 'drop': return { dropPerSec: f.perSec }
    case 'throttle': return { throttleBps: f.bps }
    default: return undefined
  }
}

/** Pairs allowed to talk under a topology fault. */
export function connectedUnder (f: Fault, n: number): (i: number, j: number) => boolean {
  switch (f.kind) {
    case 'halves': {
      const side = new Map<number, number>()
      for (const x of f.a) side.set(x, 0)
      for (const x of f.b) side.set(x, 1)
      return (i, j) => side.get(i) === side.get(j)
    }
    case 'isolate': return (i, j) => i !== f.node && j !== f.node
    case 'bridge': {
      const side = new Map<number, number>()
      for (const x of f.a) side.set(x, 0)
      for (const x of f.b) side.set(x, 1)
      return (i, j) => i === f.bridge || j === f.bridge || side.get(i) === side.get(j)
    }
    case 'ring': {
      const pos = new Map(f.order.map((x, k) => [x, k]))
      return (i, j) => {
        const d = Math.abs((pos.get(i) ?? 0) - (pos.get(j) ?? 0))
        return d <= 1 || d === n - 1
      }
    }
    default: return () => true
  }
}

/**
 * The fault schedule, drawn from the seed: `faults` steps, each a network
 * partition (halves, an isolated node, a bridge, a ring), a process fault
 * (SIGKILL then restart, SIGSTOP then SIGCONT) or a link fault (delay,
 * dropped connections, throttling), lasting one to three steps. At most
 * ⌊(n-1)/2⌋ nodes (at least one) are down at once. If the draw holds no
 * kill, one is put in, so every run crashes a node at least once.
 */
export function planNemesis (rng: Prng, options: { nodes: number, faults: number, inject?: Injection, restore?: boolean, stepMs: [number, number] }): Step[] {
  const n = options.nodes
  const maxDown = Math.max(1, Math.floor((n - 1) / 2))
  const downUntil = new Map<number, number>()
  const steps: Step[] = []
  const nodes = Array.from({ length: n }, (_, i) => i)
  const mustKillAt = options.faults >= 2 ? Math.floor(options.faults / 3) : 0
  const injectAt = options.inject !== undefined ? Math.floor(options.faults / 2) : -1
  // Not the last step: a later one reverts it, while the workload still runs.
  const restoreAt = options.restore === true && options.faults >= 3 ? Math.floor(options.faults * 2 / 3) : -1
  let killed = false
  const links = (): Link[] => {
    if (rng.chance(0.5)) {
      const k = rng.int(n)
      return nodes.filter(j => j !== k).flatMap(j => [[k, j], [j, k]] as Link[])
    }
    const all = nodes.flatMap(i => nodes.filter(j => j !== i).map(j => [i, j] as Link))
    return all.filter(() => rng.chance(0.35))
  }
  for (let index = 0; index < options.faults; index++) {
    const span = rng.chance(0.6) ? 1 : rng.between(2, 3)
    const holdMs = rng.between(options.stepMs[0], options.stepMs[1])
    for (const [node, until] of downUntil) if (until <= index) downUntil.delete(node)
    const up = nodes.filter(x => !downUntil.has(x))
    let kind = rng.weighted({ halves: 14, isolate: 10, bridge: 7, ring: 5, kill: 14, pause: 10, delay: 10, drop: 10, throttle: 8 })
    if (index === mustKillAt && !killed) kind = 'kill'
    if ((kind === 'kill' || kind === 'pause') && downUntil.size >= maxDown) kind = 'delay'
    let fault: Fault
    if (index === injectAt) {
      fault = { kind: 'lose-record', node: rng.pick(up) }
      steps.push({ index, fault, holdMs, span: 1 })
      continue
    }
    if (index === restoreAt && index !== injectAt) {
      // Held longer: the node syncs what others write while it is out, and loses it again in the restore.
      steps.push({ index, fault: { kind: 'restore', node: rng.pick(up) }, holdMs: holdMs * 2, span: 1 })
      continue
    }
    switch (kind) {
      case 'halves': {
        const order = rng.shuffle(nodes)
        const cut = rng.between(1, n - 1)
        fault = { kind, a: order.slice(0, cut).sort(), b: order.slice(cut).sort() }
        break
      }
      case 'isolate':
        fault = { kind, node: rng.int(n) }
        break
      case 'bridge': {
        const order = rng.shuffle(nodes)
        const bridge = order[0] as number
        const rest = order.slice(1)
        const cut = rng.between(1, Math.max(1, rest.length - 1))
        fault = { kind, bridge, a: rest.slice(0, cut).sort(), b: rest.slice(cut).sort() }
        break
      }
      case 'ring':
        fault = { kind, order: rng.shuffle(nodes) }
        break
      case 'kill':
      case 'pause': {
        const node = rng.pick(up)
        downUntil.set(node, index + span)
        if (kind === 'kill') killed = true
        fault = { kind, node }
        break
      }
      case 'delay':
        fault = { kind, links: links(), ms: rng.between(20, 400) }
        break
      case 'drop':
        fault = { kind, links: links(), perSec: Math.round(rng.between(2, 20)) / 10 }
        break
      default:
        fault = { kind: 'throttle', links: links(), bps: rng.between(4, 64) * 1024 }
    }
    steps.push({ index, fault, holdMs, span })
  }
  return steps
}

export interface TimelineEntry { t: number, step: number, action: string }

export interface NemesisOptions {
  cluster: Cluster
  steps: Step[]
  ops: number
  signal: AbortSignal
  log: (line: string) => void
  /** Carries out an injected data fault (the node is killed, tampered with, then restarted). */
  inject: (fault: Fault) => Promise<string>
  /** A restore step's two events; what happened, for the timeline. */
  restore?: (fault: Fault & { kind: 'restore' }, phase: RestorePhase) => Promise<string>
  startedAt: number
}

/**
 * Applies the schedule in step with the workload: op n runs during step
 * ⌊n·faults/ops⌋, and a step ends once its hold time has passed and its
 * share of ops has been dispatched (bounded, so a stuck request never
 * stalls the schedule).
 */
export class Nemesis {
  readonly #o: NemesisOptions
  readonly timeline: TimelineEntry[] = []
  #step = -1
  #dispatched = 0
  #waiters: Array<() => void> = []
  #topologyOwner: number | undefined
  /** Link -> the step whose fault it carries. */
  readonly #linkOwner = new Map<string, number>()
  readonly counts: Record<string, number> = {}
  /** A restore step whose backup is taken and whose restore is still to come. */
  #pendingRestore: Step | undefined

  constructor (o: NemesisOptions) {
    this.#o = o
  }

  #record (step: number, action: string): void {
    const t = (Date.now() - this.#o.startedAt) / 1000
    this.timeline.push({ t, step, action })
    this.#o.log(`[+${t.toFixed(1)}s] step ${step}: ${action}`)
  }

  #stepOf (n: number): number {
    const f = this.#o.steps.length
    return f === 0 ? 0 : Math.min(f - 1, Math.floor(n * f / Math.max(1, this.#o.ops)))
  }

  async gate (n: number): Promise<void> {
    const need = this.#stepOf(n)
    while (this.#step < need && !this.#o.signal.aborted) {
      await new Promise<void>(resolve => { this.#waiters.push(resolve) })
    }
  }

  dispatched (): void {
    this.#dispatched += 1
  }

  #advance (step: number): void {
    this.#step = step
    for (const wake of this.#waiters.splice(0)) wake()
  }

  async run (): Promise<void> {
    const { steps, cluster } = this.#o
    const f = steps.length
    if (f === 0) { this.#advance(Number.MAX_SAFE_INTEGER); return }
    for (const step of steps) {
      // Interrupted: stop applying faults, but still release the workers
      // waiting at the gate (below), or the run would never end.
      if (this.#o.signal.aborted) break
      for (const earlier of steps) {
        if (earlier.index < step.index && earlier.index + earlier.span === step.index) await this.#revert(earlier, step.index)
      }
      await this.#apply(step)
      this.#counts(step.fault.kind)
      this.#advance(step.index)
      const until = Date.now() + step.holdMs
      const quota = Math.ceil((step.index + 1) * this.#o.ops / f)
      const bound = until + 60_000
      while (!this.#o.signal.aborted && (Date.now() < until || (this.#dispatched < quota && Date.now() < bound))) await sleep(50, this.#o.signal)
    }
    this.#advance(Number.MAX_SAFE_INTEGER)
    void cluster
  }

  #counts (kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1
  }

  async #apply (step: Step): Promise<void> {
    const { cluster } = this.#o
    const fault = step.fault
    const linkFaults = linkFaultsOf(fault)
    // A network that cannot do a fault literally says what it does instead.
    const realised = linkFaults !== undefined ? cluster.network.realises(linkFaults) : ''
    this.#record(step.index, describeFault(fault) + (realised !== '' ? ` [${cluster.network.mode}: ${realised}]` : ''))
    if (TOPOLOGY.has(fault.kind)) {
      await cluster.setTopology(connectedUnder(fault, cluster.size))
      this.#topologyOwner = step.index
      return
    }
    switch (fault.kind) {
      case 'kill': await cluster.kill(fault.node); return
      case 'pause': cluster.pause(fault.node); return
      case 'delay':
      case 'drop':
      case 'throttle':
        for (const [i, j] of fault.links) this.#linkOwner.set(`${i}>${j}`, step.index)
        await Promise.all(fault.links.map(async ([i, j]) => { await cluster.setLinkFaults(i, j, linkFaults ?? {}) }))
        return
      case 'lose-record':
        this.#record(step.index, await this.#o.inject(fault))
        return
      case 'restore':
        this.#pendingRestore = step
        this.#record(step.index, await this.#o.restore?.(fault, 'backup') ?? 'no restore handler')
    }
  }

  async #revert (step: Step, at: number): Promise<void> {
    const { cluster } = this.#o
    const fault = step.fault
    if (TOPOLOGY.has(fault.kind)) {
      if (this.#topologyOwner !== step.index) return
      await cluster.setTopology(() => true)
      this.#topologyOwner = undefined
      this.#record(at, `heal (end of step ${step.index})`)
      return
    }
    switch (fault.kind) {
      case 'kill':
        if (cluster.nodes[fault.node]?.state === 'killed') {
          this.#record(at, `restart node ${fault.node}`)
          await cluster.start(fault.node)
        }
        return
      case 'pause':
        this.#record(at, `SIGCONT node ${fault.node}`)
        cluster.resume(fault.node)
        return
      case 'restore':
        if (this.#pendingRestore !== step) return
        this.#pendingRestore = undefined
        this.#record(at, await this.#o.restore?.(fault, 'restore') ?? 'no restore handler')
        return
      case 'delay':
      case 'drop':
      case 'throttle': {
        // A link a later step took over keeps that step's fault.
        const owned = fault.links.filter(([i, j]) => this.#linkOwner.get(`${i}>${j}`) === step.index)
        for (const [i, j] of owned) this.#linkOwner.delete(`${i}>${j}`)
        await Promise.all(owned.map(async ([i, j]) => { await cluster.setLinkFaults(i, j, {}) }))
        if (owned.length > 0) this.#record(at, `links clear (${fault.kind} of step ${step.index})`)
      }
    }
  }

  /** The final heal: every link whole and clean, every node resumed and running. */
  async healAll (): Promise<void> {
    // A restore still pending (an interrupted run) is carried out first: the node rejoins the workload's rotation.
    if (this.#pendingRestore !== undefined) await this.#revert(this.#pendingRestore, this.#o.steps.length)
    this.#record(this.#o.steps.length, 'final heal: links whole, faults cleared, nodes resumed and restarted')
    await this.#o.cluster.healAll()
    this.#topologyOwner = undefined
    this.#linkOwner.clear()
  }
}
