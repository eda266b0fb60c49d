import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { api, sleep } from './client.ts'
import { check, type CheckResult } from './checker.ts'
import { Cluster } from './cluster.ts'
import { Nemesis, planNemesis, type Fault, type Injection, type RestorePhase } from './nemesis.ts'
import type { Network } from './network.ts'
import { NetnsNetwork } from './netns-network.ts'
import { netnsPreflight, preflightMessage } from './netns-preflight.ts'
import { ProxyNetwork } from './proxy-network.ts'
import { Prng } from './prng.ts'
import type { SimReport } from './report.ts'
import { loseRecord } from './tamper.ts'
import { HOT_META_KEYS, Ledger, planWorkload, runWorkload, type Op } from './workload.ts'

export interface SimOptions {
  nodes: number
  ops: number
  faults: number
  seed: string
  /** Requests in flight at once. */
  concurrency?: number
  /** Records edited concurrently from every node. */
  hot?: number
  /** Each fault step lasts at least this long (a seeded draw in the range, ms). */
  stepMs?: [number, number]
  convergeTimeoutMs?: number
  fileTimeoutMs?: number
  /** Bound on the whole run before the final heal (ms). */
  maxRunMs?: number
  inject?: Injection
  /** Once in the run, one node is backed up online, kept out of the workload a while, then restored from that backup (`dw restore`). */
  restore?: boolean
  /** Proxies on 127.0.0.1 (default, unprivileged) or one network namespace per node (root). */
  network?: 'proxy' | 'netns'
  /** Keep the data directories and logs (always, or only when the check fails). */
  keep?: 'always' | 'failure' | 'never'
  log?: (line: string) => void
  signal?: AbortSignal
}

/** Everything the run started, so an interrupted run can still clean up synchronously. */
export interface Running { cluster?: Cluster, root?: string, keep: boolean }

function createNetwork (kind: 'proxy' | 'netns', rng: Prng, log: (line: string) => void): Network {
  if (kind === 'proxy') return new ProxyNetwork(rng)
  const preflight = netnsPreflight()
  if (!preflight.ok) throw new Error(preflightMessage(preflight.problems))
  return new NetnsNetwork(preflight.tools, log)
}

function referencedOps (plan: Op[]): Set<number> {
  const out = new Set<number>()
  for (const op of plan) {
    if ('target' in op && typeof op.target === 'object' && 'op' in op.target) out.add(op.target.op)
    if (op.type === 'delete-user') out.add(op.target)
  }
  return out
}

/**
 * One simulation: start the cluster, run the workload and the fault
 * schedule together, heal everything, check. Every process is stopped and
 * the temp directory removed at the end, whatever happened.
 */
export async function simulate (options: SimOptions, running: Running = { keep: false }): Promise<SimReport> {
  const log = options.log ?? (() => {})
  const startedAt = Date.now()
  const abort = new AbortController()
  const signal = options.signal !== undefined ? AbortSignal.any([options.signal, abort.signal]) : abort.signal
  const rng = new Prng(options.seed)
  const hotCount = options.hot ?? 3
  const plan = planWorkload(rng.fork('workload'), { ops: options.ops, nodes: options.nodes, hot: hotCount, seed: options.seed })
  const steps = planNemesis(rng.fork('nemesis'), { nodes: options.nodes, faults: options.faults, inject: options.inject, restore: options.restore, stepMs: options.stepMs ?? [1000, 3500] })
  const ledger = new Ledger()
  const networkKind = options.network ?? 'proxy'
  const network = createNetwork(networkKind, rng.fork('proxies'), log)
  const root = await mkdtemp(join(tmpdir(), `dw-sim-${options.seed}-`))
  running.root = root
  const cluster = new Cluster({ nodes: options.nodes, root, network, log })
  running.cluster = cluster
  const report: SimReport = {
    seed: options.seed,
    nodes: options.nodes,
    ops: options.ops,
    faults: options.faults,
    ok: false,
    startedAt: new Date(startedAt).toISOString(),
    durationS: 0,
    workload: { durationS: 0, outcomes: ledger.outcomes, acked: 0, unknown: 0, versions: 0, createdRecords: 0 },
    network: networkKind,
    nemesis: { counts: {}, timeline: [], network: undefined, restarts: 0 },
    healAtS: 0,
    healTookS: 0,
    check: undefined
  }
  if (options.inject !== undefined) report.inject = options.inject
  if (options.restore === true) report.restore = true
  const maxRun = setTimeout(() => { abort.abort(new Error('the run exceeded its time bound')) }, options.maxRunMs ?? 30 * 60_000)
  let check_: CheckResult | undefined
  try {
    log(`data in ${root}`)
    await cluster.setUp()
    log(`${options.nodes} nodes up, peer books full (${options.nodes * (options.nodes - 1)} ${networkKind === 'proxy' ? 'proxied links' : 'links between namespaces'})`)

    // Hot records, made on node 0 and known everywhere before the faults begin.
    const hot: string[] = []
    for (let h = 0; h < hotCount; h++) {
      const body = { name: `hot-${h}`, description: `hot record ${h}`, tags: ['red'], metadata: { [HOT_META_KEYS[0] as string]: `initial ${h}` } }
      const res = await api(cluster.target(0), 'POST', '/datasets', { json: body })
      if (res.outcome !== 'ok') throw new Error(`creating hot record ${h}: ${res.error}`)
      const key = `dataset/${res.body.id as string}`
      hot.push(res.body.id)
      ledger.created.set(key, { op: -1 - h, node: 0, kind: 'dataset' })
      ledger.initialWrites(key, { op: -1 - h, node: 0, start: res.start, end: res.end, acked: true }, { name: body.name, metadata: body.metadata, tags: body.tags })
    }
    const seenBy = Date.now() + 60_000
    for (let i = 0; i < options.nodes; i++) {
      for (const id of hot) {
        while ((await api(cluster.target(i), 'GET', `/datasets/${id}`)).outcome !== 'ok') {
          if (Date.now() > seenBy) throw new Error(`node ${i} did not receive the hot records within 60 s`)
          await sleep(100)
        }
      }
    }

    const referenced = referencedOps(plan)
    const runStart = Date.now()
    const nemesis = new Nemesis({
      cluster,
      steps,
      ops: options.ops,
      signal,
      log,
      startedAt: runStart,
      inject: async (fault: Fault) => {
        if (fault.kind !== 'lose-record') return 'nothing to inject'
        const node = cluster.nodes[fault.node]
        if (node === undefined) return 'no such node'
        await cluster.kill(fault.node)
        const candidates = [...ledger.created].filter(([k, c]) => c.kind === 'dataset' && c.op >= 0 && !referenced.has(c.op) && !ledger.deletes.has(k))
        let outcome = `no record of node ${fault.node} could be removed`
        for (const [key] of candidates.slice(0, 50)) {
          const removed = await loseRecord(node.dataDir, key)
          if (removed.removed) { outcome = `removed ${key} from node ${fault.node}'s LevelDB (meta, snapshot, ${removed.chunks ?? 0} chunks, feed entry ${removed.seq ?? '?'})`; break }
        }
        await cluster.start(fault.node)
        return outcome
      },
      restore: async (fault, phase) => await restoreStep(cluster, fault.node, join(root, `backup-node-${fault.node}.tar`), phase, log)
    })
    const workload = runWorkload({
      cluster,
      plan,
      hot,
      ledger,
      seed: options.seed,
      concurrency: options.concurrency ?? 6,
      gate: async n => { await nemesis.gate(n) },
      onDispatched: () => { nemesis.dispatched() },
      signal,
      log
    })
    let workloadDone = false
    let workloadEnd = 0
    void workload.then(() => { workloadDone = true; workloadEnd = Date.now() }, () => { workloadDone = true; workloadEnd = Date.now() })
    await nemesis.run()
    // Convergence is timed from the moment the heal begins: restarting the
    // killed nodes is part of recovering.
    const healAt = Date.now()
    await nemesis.healAll()
    report.healAtS = (healAt - runStart) / 1000
    report.healTookS = (Date.now() - healAt) / 1000
    // Requests still in flight (a paused node just resumed) finish; bounded.
    const wait = Date.now() + 60_000
    while (!workloadDone && Date.now() < wait) await sleep(100)
    if (!workloadDone) abort.abort(new Error('workload did not finish within 60 s of the final heal'))
    await workload.catch(() => {})
    report.workload.durationS = ((workloadEnd || Date.now()) - runStart) / 1000
    report.nemesis.counts = nemesis.counts
    report.nemesis.timeline = nemesis.timeline
    if (options.signal?.aborted === true) throw new Error('interrupted')
    log(`workload done; checking (convergence bound ${Math.round((options.convergeTimeoutMs ?? 180_000) / 1000)} s)`)
    check_ = await check({ cluster, ledger, healAt, convergeTimeoutMs: options.convergeTimeoutMs ?? 180_000, fileTimeoutMs: options.fileTimeoutMs ?? 120_000, log })
    report.check = check_
    report.ok = check_.violations.length === 0
  } catch (err) {
    report.error = (err as Error).stack ?? String(err)
    report.ok = false
  } finally {
    clearTimeout(maxRun)
    report.workload.acked = Object.values(ledger.outcomes).reduce((n, o) => n + o.ok, 0)
    report.workload.unknown = Object.values(ledger.outcomes).reduce((n, o) => n + o.unknown, 0)
    report.workload.versions = ledger.versions.length
    report.workload.createdRecords = ledger.created.size
    report.nemesis.network = await cluster.networkStats().catch(() => undefined)
    report.nemesis.restarts = cluster.nodes.reduce((n, node) => n + Math.max(0, node.starts - 1), 0)
    await cluster.close().catch((err: unknown) => { log(`cleanup: ${(err as Error).message}`); cluster.killAllNow() })
    const keep = options.keep === 'always' || (options.keep === 'failure' && !report.ok)
    running.keep = keep
    if (keep) {
      await writeFile(join(root, 'report.json'), JSON.stringify(report, null, 2)).catch(() => {})
      log(`kept ${root} (node data, node logs, report.json)`)
    } else {
      await rm(root, { recursive: true, force: true }).catch(() => { rmSync(root, { recursive: true, force: true }) })
    }
    running.cluster = undefined
    running.root = undefined
    report.durationS = (Date.now() - startedAt) / 1000
  }
  return report
}

/**
 * A restore step (--restore): at its start node i leaves the workload's
 * rotation, answers what it was sent, and is backed up online; it stays up
 * and syncing, so it takes in what the others write meanwhile. At its end
 * it is restored from that backup and started again, a new incarnation
 * that must get back from its peers all it lost, and whose new writes must
 * reach them although its feed reuses sequence numbers they have seen.
 * Nothing it acknowledged is lost by the rollback: it acknowledged nothing
 * after the backup.
 */
async function restoreStep (cluster: Cluster, i: number, archive: string, phase: RestorePhase, log: (line: string) => void): Promise<string> {
  const node = cluster.nodes[i]
  if (node === undefined) return `no node ${i}`
  if (phase === 'backup') {
    node.fenced = true
    const bound = Date.now() + 60_000
    while (node.inflight > 0 && Date.now() < bound) await sleep(50)
    if (node.inflight > 0) {
      node.fenced = false
      return `restore skipped: node ${i} still had ${node.inflight} requests in flight after 60 s`
    }
    try {
      await cluster.backup(i, archive)
    } catch (err) {
      node.fenced = false
      return `restore skipped: ${(err as Error).message}`
    }
    return `node ${i} backed up online; out of the workload until its restore`
  }
  if (!node.fenced) return `node ${i}: no backup to restore`
  try {
    await cluster.restore(i, archive)
    return `node ${i} restored from its backup and started (a new incarnation)`
  } catch (err) {
    log(`RESTORE FAILED: ${(err as Error).message}`)
    return `restore of node ${i} failed: ${(err as Error).message}`
  } finally {
    node.fenced = false
  }
}
