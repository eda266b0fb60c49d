/**
 * Bytes on the wire over a slow link (issue 11): two `dw start` processes,
 * each in a network namespace of its own (scripts/sim's NetnsNetwork: veths
 * on a bridge, tc HTB per link, netem when the kernel has it), the link
 * between them shaped like a field site's uplink.
 *
 *   npm run bench:link                        # 10,000 records, 1 Mbit/s (+300 ms, 1% loss with netem)
 *   npm run bench:link -- --quick             # 1,000 records, 8 MB file, 1 round
 *   node scripts/bench-link.ts --rate 0       # unshaped: the same run as on a LAN
 *   npm run bench:link -- --peer-max-rate 1   # each node's link profile of the other capped
 *                                             # at 1 Mbit/s: a thin link, served at a higher zstd level
 *
 * Node 0 (A, the sender) founds a mesh, node 1 (B) is initialised with
 * `--join`. Then:
 *   0. A receives `--records` datasets (~500-byte JSON create bodies,
 *      `datasetPayload`) through its HTTP API, before the nodes know each other;
 *   1. initial sync: A adds B as a full node and B adds A (POST /peers); timed
 *      from the first POST until B lists every dataset; bytes are what each
 *      node's HTB class for the other sent (frames on the veth: TCP/IP
 *      headers, retransmissions and acknowledgements included; the bench's
 *      own HTTP traffic to the nodes matches no class and is not counted);
 *      compared with the time those bytes need at the link rate;
 *   2. `--changed` (100) datasets are PATCHed on A, timed until B lists all of
 *      them under their new name; `--rounds` rounds, median reported;
 *   3. a `--file-mb` file is added to a dataset on A, B pins the dataset,
 *      and once the file is flowing, `--changed` more datasets change on A:
 *      the delay until B holds them, against round 2's. The phase ends
 *      when the changes arrive; the file need not finish (at 1 Mbit/s 200
 *      MB would take 27 minutes and is not what is measured).
 *
 * Needs root and the `ip`, `tc` and `nft` commands; without them it says why
 * and exits 0. Every wait is bounded (`--timeout-s`, per wait); namespaces
 * and node processes are removed on exit, on failure and on SIGINT/SIGTERM.
 * Progress goes to stderr, the markdown report to stdout.
 */
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { api, type Target } from './sim/client.ts'
import { ADMIN_PASSWORD, Cluster, DW } from './sim/cluster.ts'
import { NetnsNetwork } from './sim/netns-network.ts'
import { netnsPreflight } from './sim/netns-preflight.ts'
import { sh } from './sim/shell.ts'
import { writeRandomFile } from './random-file.ts'
import { isThinLink, MIN_RATE } from '../src/peer/link-profile.ts'
import { count, datasetPayload, machineLine, median, now, pool, progress, ratio, secs, sleep, table, tempDir, waitUntil } from './bench-util.ts'

const MiB = 1024 * 1024

/** PouchDB over HTTP (gzip), the same records, measured on these machines (issue 11). */
const POUCH = { records: 10_000, initialBytes: 2.4e6, changed: 100, changedBytes: 30e3 }

const { values: args } = parseArgs({
  options: {
    records: { type: 'string' },
    changed: { type: 'string', default: '100' },
    rounds: { type: 'string' },
    rate: { type: 'string', default: '1' },
    'peer-max-rate': { type: 'string' },
    'delay-ms': { type: 'string' },
    loss: { type: 'string' },
    'file-mb': { type: 'string' },
    'timeout-s': { type: 'string', default: '900' },
    quick: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false }
  }
})

function num (value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value.replace(/[_,]/g, ''))
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name} must be a non-negative number`)
    process.exit(2)
  }
  return n
}

const quick = args.quick === true
const RECORDS = Math.round(num(args.records, 'records', quick ? 1000 : 10_000))
const CHANGED = Math.round(num(args.changed, 'changed', 100))
const ROUNDS = Math.max(1, Math.round(num(args.rounds, 'rounds', quick ? 1 : 3)))
const RATE_MBIT = num(args.rate, 'rate', 1)
/** Mbit/s: the link profile's cap each node sets for the other (none by default); at 1 or less the link counts as thin (src/peer/link-profile.ts). */
const PEER_MAX_RATE_MBIT = args['peer-max-rate'] === undefined ? undefined : num(args['peer-max-rate'], 'peer-max-rate', 0)
if (PEER_MAX_RATE_MBIT !== undefined && PEER_MAX_RATE_MBIT * 1e6 / 8 < MIN_RATE) {
  console.error(`--peer-max-rate must be at least ${MIN_RATE * 8 / 1e6} (Mbit/s), the lowest cap a link profile takes`)
  process.exit(2)
}
const FILE_MB = num(args['file-mb'], 'file-mb', quick ? 8 : 200)
const TIMEOUT_MS = num(args['timeout-s'], 'timeout-s', 900) * 1000
if (RECORDS < CHANGED * (ROUNDS + 1)) {
  console.error(`--records must be at least --changed x (rounds + 1) = ${CHANGED * (ROUNDS + 1)}`)
  process.exit(2)
}

// ---------------------------------------------------------------- formatting (decimal, as PouchDB's figures are given)

function dec (n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`
  return `${Math.round(n)} B`
}

// ---------------------------------------------------------------- wire counters

interface Dir { bytes: number, packets: number }
interface Wire { ab: Dir, ba: Dir, at: number }

/** IPv4 + TCP with timestamps + Ethernet: what each frame carries besides TCP payload. */
const FRAME_OVERHEAD = 14 + 20 + 32

function minus (a: Wire, b: Wire): Wire {
  return {
    ab: { bytes: a.ab.bytes - b.ab.bytes, packets: a.ab.packets - b.ab.packets },
    ba: { bytes: a.ba.bytes - b.ba.bytes, packets: a.ba.packets - b.ba.packets },
    at: a.at - b.at
  }
}

const both = (w: Wire): number => w.ab.bytes + w.ba.bytes

/** Where bytes A has sent towards B wait inside A's namespace: the shaped queue (HTB backlog) and TCP's send queues. */
interface Queued { htb: number, sendQ: number, connections: number }

// ---------------------------------------------------------------- the run

const preflight = netnsPreflight()
if (!preflight.ok) {
  console.log(`bench:link cannot run here, so it measured nothing:\n${preflight.problems.map(p => `  - ${p}`).join('\n')}\n` +
    'It needs two network namespaces and a tc-shaped link between them (run it as root where iproute2 and nftables are installed).')
  process.exit(0)
}

const tools = preflight.tools
const root = await tempDir('dw-bench-link-')
const network = new NetnsNetwork(tools, progress)
const cluster = new Cluster({ nodes: 2, root, network, log: progress })
let cleaned = false
const cleanUpNow = (): void => {
  if (cleaned) return
  cleaned = true
  cluster.killAllNow()
  if (args.keep !== true) rmSync(root, { recursive: true, force: true })
}
process.on('exit', cleanUpNow)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => { progress(`${signal}: stopping the nodes and removing the namespaces`); cleanUpNow(); process.exit(130) })
}

async function queuedOnA (): Promise<Queued> {
  const { ip, tc } = tools
  const ns = network.names.node(0)
  const qdisc = await sh(ip, ['netns', 'exec', ns, tc, '-s', 'qdisc', 'show', 'dev', 'eth0']).catch(() => '')
  const htb = Number(/backlog (\d+)b/.exec(qdisc)?.[1] ?? NaN)
  const ss = await sh(ip, ['netns', 'exec', ns, 'ss', '-tnH', 'state', 'established', 'dst', network.ip(1)]).catch(() => '')
  let sendQ = 0
  let connections = 0
  for (const line of ss.split('\n')) {
    const cols = line.trim().split(/\s+/)
    if (cols.length < 4) continue
    connections += 1
    sendQ += Number(cols[1]) || 0
  }
  return { htb, sendQ, connections }
}

/**
 * What broke during a phase: connections libp2p's connection monitor cut
 * after a failed ping (the nodes log it at DEBUG=libp2p:connection-monitor:error,
 * set below), sync sessions that ended in an error, and sessions that started
 * over from 0 because the server could not vouch for the puller's checkpoint.
 */
interface Breaks { pingCuts: number, sessionErrors: number, rewinds: number }

/** Cuts in one node's log: its lines within 2 s of each other are one cut (each connection's heartbeat logs its own). */
function cutsIn (log: string): number {
  let cuts = 0
  let last = -Infinity
  for (const m of log.matchAll(/^(\S+) libp2p:connection-monitor:error aborting connection due to ping failure/gm)) {
    const at = Date.parse(m[1] as string)
    if (!(at - last < 2000)) cuts += 1
    last = at
  }
  return cuts
}

async function breaks (): Promise<Breaks> {
  const out: Breaks = { pingCuts: 0, sessionErrors: 0, rewinds: 0 }
  for (const node of cluster.nodes) {
    out.pingCuts += cutsIn(await readFile(node.logPath, 'utf8').catch(() => ''))
    const target = cluster.target(node.index)
    const sessions = await call<{ items: Array<{ outcome?: string }> }>(target, 'GET', '/audit?type=sync.session&limit=1000')
    out.sessionErrors += sessions.items.filter(e => e.outcome === 'error').length
    // Both ends audit a rewind; count the puller's.
    const rewinds = await call<{ items: Array<{ details?: { side?: string } }> }>(target, 'GET', '/audit?type=sync.rewind&limit=1000')
    out.rewinds += rewinds.items.filter(e => e.details?.side === 'puller').length
  }
  return out
}

function brokeSince (a: Breaks, b: Breaks): string {
  const d = { pingCuts: a.pingCuts - b.pingCuts, sessionErrors: a.sessionErrors - b.sessionErrors, rewinds: a.rewinds - b.rewinds }
  if (d.pingCuts + d.sessionErrors + d.rewinds === 0) return 'none'
  return `libp2p cut the connection after a failed ping ${d.pingCuts} times (A's and B's logs together: a cut often shows in both), ${d.sessionErrors} sync sessions ended in an error, ${d.rewinds} started over from 0 (the server could not vouch for the checkpoint)`
}

async function wire (): Promise<Wire> {
  const [ab, ba] = await Promise.all([network.linkCounters(0, 1), network.linkCounters(1, 0)])
  return { ab, ba, at: now() }
}

/** Waits until neither direction has moved more than `slack` bytes for `quietMs` (what a phase still sends after its goal: acks, checkpoints). */
async function settle (quietMs = 3000, slack = 2000, boundMs = 60_000): Promise<Wire> {
  const deadline = now() + boundMs
  let last = await wire()
  let quietSince = last.at
  while (now() < deadline) {
    await sleep(500)
    const cur = await wire()
    if (both(minus(cur, last)) > slack) { last = cur; quietSince = cur.at } else if (cur.at - quietSince >= quietMs) return last
  }
  return await wire()
}

async function call<T = any> (target: Target, method: string, path: string, json?: unknown, timeoutMs = 30_000): Promise<T> {
  const res = await api<T>(target, method, path, json !== undefined ? { json, timeoutMs } : { timeoutMs })
  if (res.outcome !== 'ok') throw new Error(`${method} ${path}: ${res.error ?? res.outcome}`)
  return res.body
}

interface PeerStatus { peerId: string, connected: boolean, bytesIn: number, bytesOut: number, recordsIn: number, recordsOut: number, lastError?: string }

async function syncStatus (i: number): Promise<{ peer: PeerStatus | undefined, blobBytesOut?: number }> {
  const other = cluster.nodes[1 - i]?.peerId
  const body = await call<{ peers: PeerStatus[], blobBytesOut?: number }>(cluster.target(i), 'GET', '/sync/status')
  return { peer: body.peers.find(p => p.peerId === other), blobBytesOut: body.blobBytesOut }
}

/** How many datasets node i lists (whose name contains `q`, if given). */
async function countDatasets (i: number, q?: string): Promise<number> {
  let total = 0
  let cursor: string | undefined
  do {
    const qs = new URLSearchParams({ limit: '1000' })
    if (q !== undefined) qs.set('q', q)
    if (cursor !== undefined) qs.set('cursor', cursor)
    const page = await call<{ items: unknown[], next?: string }>(cluster.target(i), 'GET', `/datasets?${qs.toString()}`)
    total += page.items.length
    cursor = page.next
  } while (cursor !== undefined)
  return total
}

/**
 * Resolves when B lists `want` datasets (matching `q`). Listing scans every
 * dataset on B, so B's cheap /sync/status is polled every 100 ms and the
 * list is read only once B has received enough records since `recordsBase`
 * (or every 2 s, in case the counter misleads).
 */
async function arrivedOnB (want: number, q: string | undefined, recordsBase: number, what: string, timeoutMs = TIMEOUT_MS): Promise<number> {
  let lastList = 0
  await waitUntil(async () => {
    const s = await syncStatus(1)
    const received = (s.peer?.recordsIn ?? 0) - recordsBase
    if (received < want && now() - lastList < 2000) return false
    lastList = now()
    return await countDatasets(1, q) >= want
  }, timeoutMs, what, 100)
  return now()
}

async function patchOnA (ids: string[], tag: string): Promise<number> {
  const started = now()
  await pool(ids.length, 10, async (k) => {
    await call(cluster.target(0), 'PATCH', `/datasets/${ids[k] as string}`, { name: `${tag} ${k}` })
  })
  return now() - started
}

function dw (argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DW, ...argv], { env: { ...process.env, DW_ADMIN_PASSWORD: ADMIN_PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    child.on('close', code => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`dw ${argv.join(' ')}: exit ${code}: ${err.slice(-500)}`))
    })
  })
}

interface Round { ms: number, patchMs: number, wire: Wire, framesAB: number, framesBA: number }

async function changeRound (ids: string[], tag: string): Promise<Round> {
  const before = await wire()
  const [sa, sb] = await Promise.all([syncStatus(0), syncStatus(1)])
  const started = now()
  const patchMs = await patchOnA(ids, tag)
  const arrived = await arrivedOnB(ids.length, tag, sb.peer?.recordsIn ?? 0, `B to list the ${ids.length} datasets renamed "${tag} ..."`)
  const after = await settle()
  const [sa2, sb2] = await Promise.all([syncStatus(0), syncStatus(1)])
  return {
    ms: arrived - started,
    patchMs,
    wire: minus(after, before),
    framesAB: (sa2.peer?.bytesOut ?? 0) - (sa.peer?.bytesOut ?? 0),
    framesBA: (sb2.peer?.bytesOut ?? 0) - (sb.peer?.bytesOut ?? 0)
  }
}

let exitCode = 0
try {
  await cluster.init()
  const rateBps = RATE_MBIT > 0 ? Math.round(RATE_MBIT * 1e6 / 8) : undefined
  const netem = network.netem
  // Delay needs netem (scripts/sim would turn it into a throttle, which would change the rate
  // measured here). Loss is an nft rule and works anywhere, but by default it goes with the
  // delay, as the issue asks: an explicit --loss applies it without netem too.
  const delayMs = rateBps !== undefined && netem ? num(args['delay-ms'], 'delay-ms', 300) : 0
  const lossPct = rateBps !== undefined && (netem || args.loss !== undefined) ? num(args.loss, 'loss', 1) : 0
  // LinkFaults speaks the proxy's language: its drop rate maps to loss at 5 % per unit (netns-rules.ts lossPercent).
  const faults = { throttleBps: rateBps, delayMs: delayMs > 0 ? delayMs : undefined, dropPerSec: lossPct > 0 ? lossPct / 5 : undefined }
  await network.setLinkFaults(0, 1, faults)
  await network.setLinkFaults(1, 0, faults)
  const shape = rateBps === undefined
    ? 'unshaped (veth pair through a bridge; no throttle, delay or loss)'
    : `${network.realises(faults)} in each direction${netem ? '' : `; this kernel has no netem qdisc, so no delay${lossPct > 0 ? '' : ' and no loss'} was applied`}`
  const profile = PEER_MAX_RATE_MBIT === undefined ? undefined : { maxRate: Math.round(PEER_MAX_RATE_MBIT * 1e6 / 8) }
  const profileLine = profile === undefined
    ? 'no link profile set (the sync serves at its usual zstd level)'
    : `each node's link profile of the other capped at ${dec(profile.maxRate)}/s (${isThinLink(profile) ? 'a thin link: the sync serves at its higher zstd level' : 'not a thin link'})`
  progress(`link: ${shape}; ${profileLine}`)

  // The nodes inherit this: their logs then say when libp2p cuts a connection after a failed ping.
  process.env.DEBUG = [process.env.DEBUG, 'libp2p:connection-monitor:error'].filter(d => d !== undefined && d !== '').join(',')
  await Promise.all([cluster.start(0), cluster.start(1)])
  const A = cluster.target(0)

  progress(`creating ${count(RECORDS)} datasets on A through its HTTP API`)
  const ids: string[] = new Array(RECORDS)
  let payloadBytes = 0
  let made = 0
  const building = now()
  await pool(RECORDS, 48, async (i) => {
    const body = datasetPayload(i)
    payloadBytes += Buffer.byteLength(JSON.stringify(body))
    ids[i] = (await call<{ id: string }>(A, 'POST', '/datasets', body)).id
    if (++made % 2000 === 0) progress(`  ${count(made)} created`)
  })
  const buildMs = now() - building

  // ---------------------------------------------------------- phase 1
  progress('phase 1: initial sync (A and B add each other)')
  const k0 = await breaks()
  const w0 = await wire()
  const t0 = now()
  await cluster.peer(TIMEOUT_MS, profile)
  const t1 = await arrivedOnB(RECORDS, undefined, 0, `B to list all ${RECORDS} datasets`)
  const w1 = await wire()
  const initialMs = t1 - t0
  const w1s = await settle()
  const [a1, b1] = await Promise.all([syncStatus(0), syncStatus(1)])
  const k1 = await breaks()
  progress(`  broke during the initial sync: ${brokeSince(k1, k0)}`)
  const initial = minus(w1, w0)
  const initialSettled = minus(w1s, w0)
  progress(`  B holds all ${count(RECORDS)} after ${secs(initialMs)}: ${dec(both(initial))} on the wire (${dec(both(initialSettled))} once quiet)`)

  // Background: what the link carries when nothing changes (pings, identify, holdings).
  const idle0 = await wire()
  await sleep(10_000)
  const idle = minus(await wire(), idle0)
  const idleBps = both(idle) / (idle.at / 1000)
  progress(`  idle link: ${dec(idleBps)}/s both ways`)

  // ---------------------------------------------------------- phase 2
  const rounds: Round[] = []
  for (let r = 0; r < ROUNDS; r++) {
    progress(`phase 2: ${CHANGED} changed records, round ${r + 1} of ${ROUNDS}`)
    const round = await changeRound(ids.slice(r * CHANGED, (r + 1) * CHANGED), `chg${r}z${process.pid}`)
    progress(`  ${secs(round.ms)}, ${dec(both(round.wire))} on the wire (A->B ${dec(round.wire.ab.bytes)} in ${round.wire.ab.packets} frames, B->A ${dec(round.wire.ba.bytes)} in ${round.wire.ba.packets})`)
    rounds.push(round)
  }
  const k2 = await breaks()
  const sorted = [...rounds].sort((x, y) => x.ms - y.ms)
  const mid = sorted[Math.floor((sorted.length - 1) / 2)] as Round
  // Bytes vary by round with how the changes happened to group into messages (up to ~1.8x): the round of median bytes, every round shown.
  const byBytes = [...rounds].sort((x, y) => both(x.wire) - both(y.wire))
  const midBytes = byBytes[Math.floor((byBytes.length - 1) / 2)] as Round
  const changeMs = median(rounds.map(r => r.ms))

  // ---------------------------------------------------------- phase 3
  progress(`phase 3: a ${FILE_MB} MB file to B, and ${CHANGED} changes while it flows`)
  const fileBytes = Math.round(FILE_MB * 1e6)
  const filePath = join(root, 'bench-link.bin')
  const sha = await writeRandomFile(filePath, fileBytes)
  const fileDataset = (await call<{ id: string }>(A, 'POST', '/datasets', { name: 'bench-link file' })).id
  const uploading = now()
  const version = JSON.parse(await dw(['version', 'add', fileDataset, filePath, '--data', cluster.nodes[0]?.dataDir as string, '--json'], TIMEOUT_MS)) as { id: string, files: Array<{ sha256: string }> }
  const uploadMs = now() - uploading
  if (version.files[0]?.sha256 !== sha) throw new Error(`A stored sha256 ${version.files[0]?.sha256}, expected ${sha}`)
  await rm(filePath)
  await waitUntil(async () => {
    const res = await api<{ versions?: Array<{ id: string }> }>(cluster.target(1), 'GET', `/datasets/${fileDataset}`)
    return res.outcome === 'ok' && (res.body.versions ?? []).some(v => v.id === version.id)
  }, TIMEOUT_MS, 'B to receive the version record', 200)
  const wf0 = await wire()
  const pinned = now()
  await call(cluster.target(1), 'POST', '/pins', { target: 'dataset', value: fileDataset })
  type Transfer = { sha256: string, done: number, total?: number }
  const transferOnB = async (): Promise<Transfer | undefined> =>
    (await call<{ transfers: Transfer[] }>(cluster.target(1), 'GET', '/transfers')).transfers.find(t => t.sha256 === sha)
  const flowing = Math.min(MiB, fileBytes / 20)
  let before: Transfer | undefined
  await waitUntil(async () => { before = await transferOnB(); return (before?.done ?? 0) >= flowing }, TIMEOUT_MS, `B's fetch of the file to pass ${dec(flowing)}`, 100)
  const flowingAfterMs = now() - pinned
  const wf1 = await wire()
  const [sb3, sa3, queued, k2b] = await Promise.all([syncStatus(1), call<{ blobBytesOut?: number }>(A, 'GET', '/sync/status'), queuedOnA(), breaks()])
  const inFlight = (sa3.blobBytesOut ?? NaN) - (before?.done ?? 0)
  const transfersAtChange = (await call<{ transfers: Transfer[] }>(cluster.target(1), 'GET', '/transfers')).transfers
  progress(`  at the changes: A served ${dec(sa3.blobBytesOut ?? NaN)}, B's transfers ${JSON.stringify(transfersAtChange)}, A's queues ${JSON.stringify(queued)}`)
  const started3 = now()
  const tag3 = `busy${process.pid}`
  const busyPatchMs = await patchOnA(ids.slice(ROUNDS * CHANGED, (ROUNDS + 1) * CHANGED), tag3)
  let busyMs = NaN
  let busyError = ''
  try {
    busyMs = await arrivedOnB(CHANGED, tag3, sb3.peer?.recordsIn ?? 0, `B to list the ${CHANGED} datasets changed during the transfer`) - started3
  } catch (err) {
    busyError = (err as Error).message
  }
  const wf2 = await wire()
  const k3 = await breaks()
  const after = await transferOnB()
  // The record's view says whether B holds the file (a GET of the file itself would start a fetch).
  const view = await api<{ versions?: Array<{ id: string, files: Array<{ present?: boolean }> }> }>(cluster.target(1), 'GET', `/datasets/${fileDataset}`)
  const stored = view.body?.versions?.find(v => v.id === version.id)?.files[0]?.present === true
  const during = minus(wf2, wf1)
  const fileRateBefore = ((before?.done ?? 0) / (flowingAfterMs / 1000))
  progress(`  changes arrived after ${secs(busyMs)} (${busyError || 'ok'}); file on B ${after !== undefined ? dec(after.done) : stored ? 'complete' : 'not listed'}`)
  const [a3, b3] = await Promise.all([syncStatus(0), syncStatus(1)])

  // ---------------------------------------------------------- report
  const lines: string[] = []
  const out = (s = ''): void => { lines.push(s) }
  const scale = RECORDS / POUCH.records
  const pouchInitial = POUCH.initialBytes * scale
  const pouchChanged = POUCH.changedBytes * (CHANGED / POUCH.changed)
  const scaledNote = RECORDS !== POUCH.records || CHANGED !== POUCH.changed ? ' (scaled linearly from PouchDB\'s 10,000 / 100)' : ''
  const idealMs = initial.ab.bytes * 8 / (RATE_MBIT * 1e6) * 1000

  out(`## bench:link: ${count(RECORDS)} records over ${rateBps === undefined ? 'an unshaped' : `a ${RATE_MBIT} Mbit/s`} link`)
  out()
  out(`Machine: ${machineLine()}. Nodes: two \`dw start\` processes, each in a network namespace of its own, joined by veths and a bridge; libp2p TCP + Noise + Yamux between them.`)
  out()
  out(`Link: ${shape}; ${profileLine}. Bytes are each node's tc HTB class for the other (link-layer frames: TCP/IP headers, retransmissions and ACKs included, the bench's HTTP calls to the nodes not).`)
  out()
  out(`Records: ${count(RECORDS)} datasets, ${dec(payloadBytes)} of JSON create bodies (${Math.round(payloadBytes / RECORDS)} B each), created on A through its HTTP API in ${secs(buildMs)} before the nodes knew each other.`)
  out()
  out('| measure | dw-mesh | PouchDB | dw-mesh / PouchDB |')
  out('| --- | --- | --- | --- |')
  out(`| initial sync of ${count(RECORDS)} records, bytes on the wire (both ways) | ${dec(both(initial))} (A->B ${dec(initial.ab.bytes)}, B->A ${dec(initial.ba.bytes)}) | ${dec(pouchInitial)}${scaledNote} | ${ratio(both(initial), pouchInitial)} |`)
  out(`| ${CHANGED} changed records, bytes on the wire (both ways; median of ${ROUNDS} rounds: ${rounds.map(r => dec(both(r.wire))).join(', ')}) | ${dec(both(midBytes.wire))} (A->B ${dec(midBytes.wire.ab.bytes)}, B->A ${dec(midBytes.wire.ba.bytes)}) | ${dec(pouchChanged)} | ${ratio(both(midBytes.wire), pouchChanged)} |`)
  out(`| per record, initial sync | ${dec(both(initial) / RECORDS)} | ${dec(pouchInitial / RECORDS)} | |`)
  out(`| per changed record | ${dec(both(midBytes.wire) / CHANGED)} | ${dec(pouchChanged / CHANGED)} | |`)
  out()
  const timeRows: string[][] = [
    [`initial sync of ${count(RECORDS)} records`, secs(initialMs), rateBps === undefined ? 'n/a (unshaped)' : secs(idealMs), rateBps === undefined ? 'n/a' : ratio(initialMs, idealMs), `${count(Math.round(RECORDS / (initialMs / 1000)))} records/s`],
    [`${CHANGED} changed records (median of ${ROUNDS}; ${rounds.map(r => secs(r.ms)).join(', ')})`, secs(changeMs), rateBps === undefined ? 'n/a' : secs(mid.wire.ab.bytes * 8 / (RATE_MBIT * 1e6) * 1000), rateBps === undefined ? 'n/a' : ratio(mid.ms, mid.wire.ab.bytes * 8 / (RATE_MBIT * 1e6) * 1000), `PATCHes on A took ${secs(median(rounds.map(r => r.patchMs)))}`],
    [`${CHANGED} changed records while the file transfers`, busyError !== '' ? `did not arrive (${busyError})` : secs(busyMs), '', busyError !== '' ? '' : `${ratio(busyMs, changeMs)} of the idle link's`, `PATCHes on A took ${secs(busyPatchMs)}; ` + (after !== undefined ? `file on B when they arrived: ${dec(after.done)} of ${dec(fileBytes)}` : stored ? `the whole file (${dec(fileBytes)}) reached B before the changes did` : `B's transfer was no longer listed when they arrived (it had ${dec(before?.done ?? 0)} of ${dec(fileBytes)} when they were made)`)]
  ]
  out('| timing | wall time | A->B bytes at the link rate | ratio | notes |')
  out('| --- | --- | --- | --- | --- |')
  for (const row of timeRows) out(`| ${row.join(' | ')} |`)
  out()
  out(`What broke: initial sync: ${brokeSince(k1, k0)}; change rounds: ${brokeSince(k2, k1)}; file phase, upload to the changes: ${brokeSince(k2b, k2)}; while the changes travelled: ${brokeSince(k3, k2b)}.`)
  out()
  if (rateBps !== undefined) {
    out(`"A->B bytes at the link rate": the sender's bytes x 8 / ${RATE_MBIT} Mbit/s, the least time the link needs for them (each direction has the full rate; B->A carries far less and runs alongside). A ratio well above 1 is time the protocol spends not sending.`)
    out()
  }
  out('Where the bytes go (initial sync until B listed every record; the node\'s counters are its sync frames, length-prefixed CBOR before Noise and Yamux):')
  out()
  const wireRows = (label: string, w: Wire, framesAB: number, framesBA: number): string[][] => [
    [`${label}, A->B`, dec(w.ab.bytes), count(w.ab.packets), dec(w.ab.bytes - w.ab.packets * FRAME_OVERHEAD), dec(framesAB), ratio(w.ab.bytes, framesAB)],
    [`${label}, B->A`, dec(w.ba.bytes), count(w.ba.packets), dec(w.ba.bytes - w.ba.packets * FRAME_OVERHEAD), dec(framesBA), ratio(w.ba.bytes, framesBA)]
  ]
  out(table(['traffic', 'wire bytes', 'frames', `TCP payload (wire - ${FRAME_OVERHEAD} B/frame)`, 'sync frames (node counters)', 'wire / sync frames'], [
    ...wireRows('initial sync', initial, a1.peer?.bytesOut ?? NaN, b1.peer?.bytesOut ?? NaN),
    ...wireRows(`${CHANGED} changes (round of median bytes)`, midBytes.wire, midBytes.framesAB, midBytes.framesBA)
  ]))
  out()
  out(`Initial-sync sync frames are the nodes' totals up to the quiet point after it (A's counter: ${count(a1.peer?.recordsOut ?? 0)} records sent for ${count(RECORDS)}); until quiet the wire carried ${dec(both(initialSettled))} (${dec(both(initialSettled) - both(initial))} after B listed the last record). ` +
    ((a1.peer?.bytesOut ?? 0) > initialSettled.ab.bytes ? `A counted more sync frames than its wire bytes: what it handed to libp2p on connections cut before it left. ` : '') +
    `The idle link carries ${dec(idleBps)}/s both ways (libp2p pings and the like), included in every figure: ${dec(idleBps * initialMs / 1000)} over the initial sync, ${dec(idleBps * (changeMs + 3000) / 1000)} over a change round with its 3 s quiet wait.`)
  out()
  out(`File phase: ${dec(fileBytes)} uploaded to A in ${secs(uploadMs)} (\`dw version add\`, not over the link); B pinned the dataset and its fetch passed ${dec(flowing)} after ${secs(flowingAfterMs)} (${dec(fileRateBefore)}/s); then ${CHANGED} datasets changed on A. ` +
    `While they travelled (${secs(busyMs)}) the wire carried ${dec(during.ab.bytes)} A->B and ${dec(during.ba.bytes)} B->A. The phase ends when the changes arrive; the file is not waited for. ` +
    `When the changes were made, A's blob service had handed ${dec(inFlight)} more file bytes to libp2p than B had written (B's transfers: ${transfersAtChange.length}); A's TCP send queues to B held ${dec(queued.sendQ)} unacknowledged or unsent (${queued.connections} connection${queued.connections === 1 ? '' : 's'}), ${dec(queued.htb)} of it in the shaped queue (HTB backlog). The changes queue behind what is queued on the same connection. ` +
    `Over the whole phase A's blob counter says ${dec(a3.blobBytesOut ?? 0)} of file bytes sent; sync frames A->B during the phase: ${dec((a3.peer?.bytesOut ?? 0) - (a1.peer?.bytesOut ?? 0) - rounds.reduce((s, r) => s + r.framesAB, 0))}; wire A->B from the pin until the changes arrived: ${dec(minus(wf2, wf0).ab.bytes)}.`)
  const lossNote = lossPct > 0 ? ` Packets dropped by the loss rule over the whole run: ${count((await network.stats()).lossPackets)}.` : ''
  if (lossNote !== '') { out(); out(lossNote.trim()) }
  if (b3.peer?.lastError !== undefined) { out(); out(`B's last sync error: ${b3.peer.lastError}`) }
  console.log(lines.join('\n'))
} catch (err) {
  exitCode = 1
  progress(`FAILED: ${(err as Error).stack ?? String(err)}`)
  for (const node of cluster.nodes) progress(`node ${node.index} log (${node.logPath}), last lines:\n${await import('node:fs/promises').then(fs => fs.readFile(node.logPath, 'utf8')).then(t => t.slice(-2000)).catch(() => '(none)')}`)
} finally {
  await cluster.close().catch((err: Error) => { progress(`clean-up: ${err.message}`) })
  cleanUpNow()
}
process.exit(exitCode)
