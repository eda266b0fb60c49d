/**
 * Two-node sync benchmark over real libp2p (TCP + Noise + Yamux on 127.0.0.1).
 * By default each node runs in a child process of its own (scripts/bench-agent.ts),
 * as two sites would; `--in-process` runs both in this process instead.
 *
 *   npm run bench:sync                  # sizes 1,000 / 10,000 / 100,000
 *   npm run bench:sync -- --quick       # sizes 1,000 / 2,000 / 5,000, fewer writes
 *   node scripts/bench-sync.ts --sizes 1000,10000 --writes 500 --rounds 9
 *
 * For each store size S, a fresh pair of nodes (pairs set up one at a time):
 *   0. A founds a mesh, B joins it (A enrols it as a full node) and the two
 *      unlink again, so the timed sync moves records, not B's first roster;
 *   1. S datasets (~500-byte create bodies) are created on A straight through
 *      its DocStore (building 100,000 through HTTP would take too long);
 *   2. initial sync: B adds A and A adds B through POST /peers; timed from the
 *      first POST until B holds every dataset with A's exact heads; bytes from
 *      B's GET /sync/status (framed sync messages, before Noise/Yamux);
 * then, with every pair alive and linked:
 *   3. incremental sync: `--changed` (100) records change on A (all at once,
 *      in-process), timed until B holds the new heads of all of them;
 *      one warm-up round, then `--rounds` rounds, round-robin across the pairs
 *      so that machine noise hits every size alike; median reported, ratio to
 *      the smallest store;
 *   4. on the `--latency-size` pair: `--writes` sequential PATCHes through A's
 *      HTTP API, each timed until B's stored summary shows the new name
 *      (`--write-gap-ms N`: each after N ms of quiet, as a field site's
 *      sporadic edits come, instead of back to back);
 *   5. both nodes' full states (every record's heads) must match at the end.
 *
 * Other options: --timeout-s N (bound on each wait, default 600),
 * --cpu-prof DIR (V8 CPU profiles of both nodes over the initial and the
 * incremental phases, written to DIR/<phase>-<size>-<A|B>.cpuprofile).
 * Progress goes to stderr, the markdown report to stdout.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent, type HeadsEntry, type NodeInfo } from './bench-agent.ts'
import {
  bytes, count, enrol, httpJson, intOption, machineLine, median, ms, now, progress, rate, ratio, secs, sleep, summarize, table, waitUntil, withTimeout
} from './bench-util.ts'
import { forkAgent } from './bench-ipc.ts'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    changed: { type: 'string' },
    rounds: { type: 'string' },
    writes: { type: 'string' },
    'latency-size': { type: 'string' },
    'write-gap-ms': { type: 'string' },
    'in-process': { type: 'boolean', default: false },
    'timeout-s': { type: 'string' },
    'cpu-prof': { type: 'string' }
  }
})
const quick = values.quick === true
const SIZES = (values.sizes ?? (quick ? '1000,2000,5000' : '1000,10000,100000')).split(',').map((s, i) => intOption(s, `sizes[${i}]`, 0)).filter(n => n > 0)
const CHANGED = intOption(values.changed, 'changed', 100)
const ROUNDS = Math.max(1, intOption(values.rounds, 'rounds', quick ? 3 : 7))
const WRITES = intOption(values.writes, 'writes', quick ? 200 : 1000)
/** A pause before each latency write: a quiet spell, as between a field site's sporadic edits. */
const WRITE_GAP_MS = intOption(values['write-gap-ms'], 'write-gap-ms', 0)
const LATENCY_SIZE = intOption(values['latency-size'], 'latency-size', SIZES.includes(10_000) ? 10_000 : SIZES[0] ?? 0)
const IN_PROCESS = values['in-process'] === true
const TIMEOUT = intOption(values['timeout-s'], 'timeout-s', 600) * 1000
const CPU_PROF = values['cpu-prof']
const AGENT = new URL('./bench-agent.ts', import.meta.url).pathname

// ---------------------------------------------------------------- agents

interface Remote {
  call: <T>(cmd: string, args?: unknown, timeoutMs?: number) => Promise<T>
  /** Waits (bounded) for a child to exit after `stop`, then kills it if it has not. */
  close: () => Promise<void>
}

function inProcess (): Remote {
  const agent = new Agent() as unknown as Record<string, (args: unknown) => unknown>
  return {
    call: async <T>(cmd: string, args?: unknown, timeoutMs = TIMEOUT): Promise<T> =>
      await withTimeout(Promise.resolve((agent[cmd] as (a: unknown) => unknown).call(agent, args) as T), timeoutMs, cmd),
    close: async () => {}
  }
}

function child (name: string): Remote {
  const { call, exited } = forkAgent(AGENT, name, TIMEOUT)
  // A stopped agent exits by itself; a stuck one is killed.
  return { call, close: exited }
}

const spawnAgent = (name: string): Remote => IN_PROCESS ? inProcess() : child(name)

async function cpuOf ([a, b]: [Remote, Remote]): Promise<[number, number]> {
  return await Promise.all([a.call<number>('cpu'), b.call<number>('cpu')])
}

/** With --cpu-prof DIR: profiles both nodes over one phase, into DIR/<phase>-A.cpuprofile and -B. */
async function profile (action: 'start' | 'stop', agents: Remote[], phase = ''): Promise<void> {
  if (CPU_PROF === undefined) return
  await Promise.all(agents.map(async (agent, i) => {
    if (action === 'start') await agent.call('profileStart')
    else await agent.call('profileStop', { file: join(CPU_PROF, `${phase}-${i === 0 ? 'A' : 'B'}.cpuprofile`) })
  }))
}

// ---------------------------------------------------------------- helpers

interface PeerStatus { peerId: string, connected: boolean, behindPeer: number | null, peerBehind: number | null, bytesIn: number, bytesOut: number, recordsIn: number, recordsOut: number }

async function peerStatus (node: NodeInfo, peerId: string): Promise<PeerStatus> {
  const status = await httpJson(node.url, 'GET', '/sync/status', undefined, node.token) as { peers: PeerStatus[] }
  const p = status.peers.find(x => x.peerId === peerId)
  if (p === undefined) throw new Error(`${peerId} not in ${node.url}'s sync status`)
  return p
}

function statesEqual (a: HeadsEntry[], b: HeadsEntry[]): boolean {
  const norm = (s: HeadsEntry[]): string => JSON.stringify(s.map(([k, h]): HeadsEntry => [k, [...h].sort()]).sort((x, y) => x[0] < y[0] ? -1 : 1))
  return norm(a) === norm(b)
}

interface SizeResult {
  size: number
  buildMs: number
  payloadBytes: number
  initialMs: number
  /** CPU time (user + system) A and B used during the initial sync. */
  initialCpu: [number, number]
  /** Per incremental round, CPU time of A (the changes and serving them) and B (pulling and applying them). */
  incrementalCpu: Array<[number, number]>
  wireIn: number
  wireOut: number
  /** What A's GET /sync/status says it sent to B right after the initial sync. */
  servedRecords: number
  servedBytes: number
  /** A's bytesIn from B: B's offers to A (of B's feed, which now holds everything it received). */
  echoBytes: number
  incremental: number[]
  writeMs: number[]
  /** From B hearing that A had committed (B's own clock) until B held all the changes. */
  afterCommit: number[]
  latency?: { total: number[], patch: number[] }
  rssA: number
  rssB: number
}

// ---------------------------------------------------------------- phases

/** One pair of nodes holding a store of `size` records, and what was measured on it. */
interface Pair {
  size: number
  a: Remote
  b: Remote
  A: NodeInfo
  B: NodeInfo
  r: SizeResult
}

/** Starts a pair, builds A's store and times the initial sync to B. */
async function setupPair (size: number, a: Remote, b: Remote): Promise<Pair> {
  progress(`=== store of ${count(size)} records`)
  const [A, B] = await Promise.all([a.call<NodeInfo>('start', {}, 60_000), b.call<NodeInfo>('start', { join: true }, 60_000)])
  // A founded a mesh; B joins it (A enrols it as a full node), then the two
  // forget each other: the timed sync below moves the records alone, not B's
  // first roster (without which B would hold every record back until it came).
  progress('B joins A\'s mesh (enrolled as full), then A and B unlink')
  const role = await enrol(A, B, { names: ['A', 'B'] })
  if (role !== 'full') throw new Error(`B joined as ${role}, expected full`)
  await httpJson(B.url, 'DELETE', `/peers/${A.peerId}`, undefined, B.token)
  await httpJson(A.url, 'DELETE', `/peers/${B.peerId}`, undefined, A.token)
  progress(`creating ${count(size)} datasets on A (DocStore, in-process)`)
  const built = await a.call<{ ms: number, payloadBytes: number }>('createDirect', { count: size })
  progress(`  built in ${secs(built.ms)} (${rate(size, built.ms)})`)
  const expected = await a.call<HeadsEntry[]>('heads', { prefix: 'dataset/' })
  if (expected.length !== size) throw new Error(`A holds ${expected.length} datasets, expected ${size}`)

  progress('linking A and B (POST /peers both ways); timing the initial sync')
  await profile('start', [a, b])
  const cpu0 = await cpuOf([a, b])
  const t0 = now()
  await httpJson(B.url, 'POST', '/peers', { multiaddr: A.address, name: 'A' }, B.token)
  await httpJson(A.url, 'POST', '/peers', { multiaddr: B.address, name: 'B' }, A.token)
  const waited = await b.call<{ ok: boolean, missing: number }>('waitHeads', { expected, timeoutMs: TIMEOUT }, TIMEOUT + 10_000)
  const initialMs = now() - t0
  const cpu1 = await cpuOf([a, b])
  if (!waited.ok) throw new Error(`initial sync of ${size}: ${waited.missing} records still missing on B after ${secs(TIMEOUT)}`)
  const initialCpu: [number, number] = [cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]]
  progress(`  initial sync: ${secs(initialMs)} (${rate(size, initialMs)}); CPU A ${secs(initialCpu[0])}, B ${secs(initialCpu[1])}`)
  await profile('stop', [a, b], `initial-${size}`)
  // Status counts a batch's bytes once it is applied and acknowledged: wait for that.
  await waitUntil(async () => (await peerStatus(B, A.peerId)).behindPeer === 0, 30_000, 'B to report it is caught up with A', 20)
  const wire = await peerStatus(B, A.peerId)
  // The serving side's view of the same transfer (its counters for peer B).
  const served = await peerStatus(A, B.peerId)
  return {
    size, a, b, A, B,
    r: {
      size, buildMs: built.ms, payloadBytes: built.payloadBytes, initialMs, initialCpu, incrementalCpu: [], wireIn: wire.bytesIn, wireOut: wire.bytesOut,
      servedRecords: served.recordsOut, servedBytes: served.bytesOut, echoBytes: served.bytesIn,
      incremental: [], writeMs: [], afterCommit: [], rssA: 0, rssB: 0
    }
  }
}

/** One incremental round: CHANGED records change on A at once; timed until B holds all their new heads. */
async function incrementalRound (p: Pair, round: number): Promise<void> {
  const keys = await p.a.call<string[]>('pick', { count: CHANGED, offset: (round + 1) * 13 })
  const cpu0 = await cpuOf([p.a, p.b])
  const t = now()
  const changed = await p.a.call<{ ms: number, heads: HeadsEntry[] }>('changeDirect', { keys, tag: `round ${round}` })
  const got = await p.b.call<{ ok: boolean, missing: number, ms: number }>('waitHeads', { expected: changed.heads, timeoutMs: 60_000 }, 70_000)
  const total = now() - t
  const cpu1 = await cpuOf([p.a, p.b])
  if (!got.ok) throw new Error(`incremental round ${round} at ${p.size}: ${got.missing} of ${CHANGED} changes not on B after 60 s`)
  const cpu: [number, number] = [cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]]
  const what = `A's commit of the ${CHANGED} changes: ${ms(changed.ms)}; after it: ${ms(got.ms)}; CPU A ${ms(cpu[0])}, B ${ms(cpu[1])}`
  if (round < 0) {
    progress(`  ${count(p.size)}: warm-up round (not counted): ${ms(total)} (${what})`)
    return
  }
  p.r.incremental.push(total)
  p.r.writeMs.push(changed.ms)
  p.r.afterCommit.push(got.ms)
  p.r.incrementalCpu.push(cpu)
  progress(`  ${count(p.size)}: incremental round ${round + 1}/${ROUNDS}: ${ms(total)} (${what})`)
}

/** WRITES sequential PATCHes through A's HTTP API, each timed until B's stored summary shows it. */
async function latencyRun (p: Pair): Promise<void> {
  progress(`latency at ${count(p.size)}: ${WRITES} sequential PATCHes on A${WRITE_GAP_MS > 0 ? `, each after ${WRITE_GAP_MS} ms of quiet` : ''}, each polled on B until visible`)
  const keys = await p.a.call<string[]>('pick', { count: Math.min(WRITES, p.size), offset: 5 })
  const total: number[] = []
  const patch: number[] = []
  for (let i = WRITE_GAP_MS > 0 ? -2 : -20; i < WRITES; i++) {
    const key = keys[((i % keys.length) + keys.length) % keys.length] as string
    const name = `latency ${i}`
    if (WRITE_GAP_MS > 0) await sleep(WRITE_GAP_MS)
    const t = now()
    await httpJson(p.A.url, 'PATCH', `/datasets/${key.slice('dataset/'.length)}`, { name }, p.A.token)
    const tp = now()
    const seen = await p.b.call<{ ok: boolean }>('waitName', { key, name, timeoutMs: 10_000 }, 15_000)
    if (!seen.ok) throw new Error(`write ${i} not visible on B after 10 s`)
    if (i >= 0) { total.push(now() - t); patch.push(tp - t) }
  }
  p.r.latency = { total, patch }
  const s = summarize(total)
  progress(`  write->visible p50 ${ms(s.p50)}, p99 ${ms(s.p99)}`)
}

/** Every replicated document must have converged both ways; then the pair stops. */
async function finishPair (p: Pair): Promise<void> {
  let stateA: HeadsEntry[] = []
  let stateB: HeadsEntry[] = []
  await waitUntil(async () => {
    [stateA, stateB] = await Promise.all([p.a.call<HeadsEntry[]>('heads'), p.b.call<HeadsEntry[]>('heads')])
    return statesEqual(stateA, stateB)
  }, 60_000, `A and B (${count(p.size)}) to hold identical state`, 250)
  progress(`  ${count(p.size)}: converged, ${count(stateA.length)} documents with identical heads on both nodes`)
  const [sa, sb] = await Promise.all([p.a.call<{ rss: number }>('status'), p.b.call<{ rss: number }>('status')])
  p.r.rssA = sa.rss
  p.r.rssB = sb.rss
  await Promise.all([p.a.call('stop', undefined, 60_000), p.b.call('stop', undefined, 60_000)])
}

/**
 * Sets every pair up one after the other (each initial sync runs alone),
 * then runs the incremental rounds round-robin across the pairs, so noise
 * from a shared machine lands on every store size alike and the ratios
 * between sizes stay meaningful. Idle pairs cost no CPU.
 */
async function runAll (): Promise<SizeResult[]> {
  const agents: Remote[] = []
  const pairs: Pair[] = []
  try {
    for (const size of SIZES) {
      const a = spawnAgent(`A-${size}`)
      const b = spawnAgent(`B-${size}`)
      agents.push(a, b)
      pairs.push(await setupPair(size, a, b))
    }
    await sleep(1000)
    progress(`incremental rounds, round-robin over the ${pairs.length} pairs`)
    await profile('start', agents)
    // Round -1 warms every pair up (first use of the live sessions and caches) and is not counted.
    for (let r = -1; r < ROUNDS; r++) {
      for (const p of pairs) {
        await incrementalRound(p, r)
        await sleep(200)
      }
    }
    if (CPU_PROF !== undefined) {
      await Promise.all(pairs.map(async p => { await profile('stop', [p.a, p.b], `incremental-${p.size}`) }))
    }
    const lat = pairs.find(p => p.size === LATENCY_SIZE)
    if (lat !== undefined && WRITES > 0) await latencyRun(lat)
    for (const p of pairs) await finishPair(p)
    return pairs.map(p => p.r)
  } finally {
    // A failed run never sent `stop`: ask, without waiting long, then make sure.
    await Promise.all(agents.map(async x => { await x.call('stop', undefined, 20_000).catch(() => {}) }))
    await Promise.all(agents.map(async x => { await x.close() }))
  }
}

// ---------------------------------------------------------------- report

function report (results: SizeResult[]): string {
  const lines: string[] = []
  lines.push(`## bench:sync (${new Date().toISOString().slice(0, 16)}Z)`, '')
  lines.push(`Machine: ${machineLine()}. Nodes: ${IN_PROCESS ? 'both in one process' : 'one child process each'}; libp2p TCP + Noise + Yamux on 127.0.0.1.`, '')
  lines.push('### Initial sync (B joined the mesh of A first and the two unlinked; records created on A before linking again; timed from the first POST /peers until B holds all of them with identical heads)', '')
  lines.push(table(['records', 'time', 'records/s', 'CPU A / B', 'B\'s CPU per record', 'bytes A->B', 'bytes B->A', 'JSON of create bodies', 'wire / JSON', 'RSS A / B at the end'], results.map(r => [
    count(r.size), secs(r.initialMs), rate(r.size, r.initialMs), `${secs(r.initialCpu[0])} / ${secs(r.initialCpu[1])}`, ms(r.initialCpu[1] / r.size, 2),
    bytes(r.wireIn), bytes(r.wireOut), bytes(r.payloadBytes), ratio(r.wireIn + r.wireOut, r.payloadBytes), `${bytes(r.rssA)} / ${bytes(r.rssB)}`
  ])), '')
  lines.push(IN_PROCESS
    ? 'With --in-process, both nodes (and every pair) share one process: "CPU A / B" and "RSS A / B" are the same process counted twice.'
    : 'CPU is each node process\'s user + system time over the same span (process.cpuUsage): unlike wall time, it hardly depends on what else the machine runs. With one core per node, B\'s CPU time is the floor of the sync time.', '')
  lines.push('Bytes are B\'s GET /sync/status counters for peer A (length-prefixed CBOR sync frames of B\'s pull from A; Noise and Yamux framing not included). JSON is the sum of JSON.stringify of the create bodies.', '')
  lines.push('The same transfer as A\'s GET /sync/status reports it (its counters for peer B), read right after B caught up:', '')
  lines.push(table(['records', 'A: recordsOut to B', 'A: bytesOut to B', 'A: bytesIn from B'], results.map(r => [
    count(r.size), count(r.servedRecords), bytes(r.servedBytes), bytes(r.echoBytes)
  ])), '')
  const base = median(results[0]?.incremental ?? [])
  lines.push(`### Incremental sync of ${CHANGED} changed records (live link; from the start of the changes on A until B holds all ${CHANGED} new heads; median of ${ROUNDS} rounds, run round-robin across the store sizes)`, '')
  const baseAfter = median(results[0]?.afterCommit ?? [])
  const baseCpu = median((results[0]?.incrementalCpu ?? []).map(c => c[0] + c[1]))
  lines.push(table(['records in each store', 'median', 'min', 'max', `ratio to ${count(results[0]?.size ?? 0)}`, `A's commit of the ${CHANGED} changes (median)`, 'after A\'s commit (median)', 'ratio', 'CPU A / B per round (median)', 'ratio (A + B)'], results.map(r => {
    const s = summarize(r.incremental)
    const after = median(r.afterCommit)
    const cpuA = median(r.incrementalCpu.map(c => c[0]))
    const cpuB = median(r.incrementalCpu.map(c => c[1]))
    const cpuSum = median(r.incrementalCpu.map(c => c[0] + c[1]))
    return [count(r.size), ms(s.p50), ms(s.min), ms(s.max), ratio(s.p50, base), ms(median(r.writeMs)), ms(after), ratio(after, baseAfter), `${ms(cpuA)} / ${ms(cpuB)}`, ratio(cpuSum, baseCpu)]
  })), '')
  lines.push(`"after A's commit": from the moment B is told that A's ${CHANGED} changes are committed until B holds them all (the sync starts during A's commit, so this is a lower bound of the sync's own time). CPU per round: A's includes making the ${CHANGED} changes; B's includes a re-check of the ${CHANGED} heads every 250 ms (change events time the arrival).`, '')
  const lat = results.find(r => r.latency !== undefined)
  if (lat?.latency !== undefined) {
    const t = summarize(lat.latency.total)
    const p = summarize(lat.latency.patch)
    lines.push(`### Write on A to visible on B (${count(t.n)} sequential PATCH /datasets/:id through A's HTTP API${WRITE_GAP_MS > 0 ? `, each after ${WRITE_GAP_MS} ms of quiet` : ''}; stores of ${count(lat.size)})`, '')
    lines.push(table(['measure', 'p50', 'p90', 'p99', 'max', 'mean'], [
      ['PATCH sent -> visible on B', ms(t.p50), ms(t.p90), ms(t.p99), ms(t.max), ms(t.mean)],
      ['of which the PATCH itself (A commits with fsync)', ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max), ms(p.mean)]
    ]), '')
  }
  lines.push('Building the stores on A (DocStore.create, 64 at a time, not part of any timing above): ' +
    results.map(r => `${count(r.size)} in ${secs(r.buildMs)} (${rate(r.size, r.buildMs)})`).join('; ') + '.')
  return lines.join('\n')
}

async function main (): Promise<void> {
  if (CPU_PROF !== undefined) {
    if (IN_PROCESS) throw new Error('--cpu-prof needs child processes (drop --in-process, or run node --cpu-prof yourself)')
    await mkdir(CPU_PROF, { recursive: true })
  }
  progress(`bench-sync: sizes ${SIZES.join(', ')}; ${CHANGED} changed x ${ROUNDS} rounds; ${WRITES} latency writes at ${LATENCY_SIZE}; ${IN_PROCESS ? 'in-process' : 'child processes'}`)
  console.log(report(await runAll()))
}

try {
  await main()
} catch (err) {
  console.error(err)
  process.exitCode = 1
}
