/**
 * File-byte throughput between two sites, against the transports under it.
 * In one run, each path moves the same number of bytes between two separate
 * processes on 127.0.0.1:
 *
 *   (a) a raw TCP socket: 1 MiB writes with backpressure;
 *   (b) a bare libp2p stream (TCP + Noise + Yamux, the node's own settings),
 *       `stream.send()` with backpressure, at 1 MiB and at 256 KiB writes;
 *       and the blob protocol's own messages (256 KiB `chunk` messages in
 *       CBOR through FramedStream) from memory, without disk or HTTP;
 *   (c) dw-mesh: two real nodes (`dw start`, each its own process), a file
 *       uploaded on A with `dw version add`, then downloaded through B's
 *       HTTP API once B has the metadata: B fetches it from A over
 *       `/dw/blob/1.0.0` and streams it to the client as it arrives;
 *   (d) the same download from B again (now local), and from A, for reference.
 *
 * Times are wall clock; the CPU column (from /proc, per MiB moved) does not
 * depend on what else the machine is doing, so it is the steadier figure.
 * Both nodes' RSS is sampled during (c) (and their peak RSS counter reset
 * just before it); the download is checked byte for byte (sha256). A download
 * that breaks off is reported and asked again (up to 3 times, as a client
 * would; B resumes from its partial file). Exits non-zero if a download
 * broke off, the bytes differ, or either node grew more than 150 MiB over
 * idle. Prints markdown tables on stdout, progress on stderr.
 *
 *   node scripts/bench-blobs.ts [--size-mb 512] [--runs 3] [--mesh-only]
 *                               [--cpu-prof DIR [--cpu-prof-nodes site-a,site-b]]
 *
 * --runs repeats (a) and (b) and reports the median; (c) runs once.
 * --cpu-prof DIR starts both dw nodes and the baseline senders with
 * `node --cpu-prof` and writes their profiles to DIR, with window.json (the
 * download's start and end on the profiles' clock, microseconds) so the
 * transfer can be cut out of the nodes' profiles. --cpu-prof-nodes site-a
 * profiles only A (profiling slows a node down).
 * --mesh-only skips (a) and (b) (for profiling).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { get as httpGet } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { createPeerNode, type PeerNode } from '../src/peer/libp2p.ts'
import { FramedStream } from '../src/peer/framed-stream.ts'
import { MAX_BLOB_MESSAGE, parseBlobResponse } from '../src/blobs/transfer/messages.ts'
import { writeRandomFile } from './random-file.ts'

const MiB = 1024 * 1024
const GROWTH_LIMIT_MIB = 150
const SAMPLE_MS = 50
const DW = fileURLToPath(new URL('../bin/dw.ts', import.meta.url))
const CHILD = fileURLToPath(new URL('./bench-blobs-child.ts', import.meta.url))
const BENCH_PROTOCOL = '/dw-bench/raw/1.0.0'
const BENCH_FRAMED_PROTOCOL = '/dw-bench/framed/1.0.0'
const ADMIN_PASSWORD = 'bench blobs admin password 1'
const run = promisify(execFile)

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '512' },
    runs: { type: 'string', default: '3' },
    'cpu-prof': { type: 'string' },
    'cpu-prof-nodes': { type: 'string', default: 'site-a,site-b' },
    'mesh-only': { type: 'boolean', default: false }
  }
})
const sizeMiB = Number(values['size-mb'])
const runs = Number(values.runs)
if (!Number.isSafeInteger(sizeMiB) || sizeMiB <= 0 || !Number.isSafeInteger(runs) || runs <= 0) {
  console.error('usage: node scripts/bench-blobs.ts [--size-mb N] [--runs N] [--cpu-prof DIR [--cpu-prof-nodes site-a,site-b]] [--mesh-only]  (N positive integers)')
  process.exit(2)
}
const total = sizeMiB * MiB
const profDir = values['cpu-prof'] !== undefined ? resolve(values['cpu-prof']) : undefined
/** Any single transfer: at least 2 minutes, or 5 MiB/s, whichever is longer. */
const TRANSFER_TIMEOUT_MS = Math.max(120_000, sizeMiB / 5 * 1000)
const CLK_TCK = (() => { try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100 } catch { return 100 } })()

// ---------------------------------------------------------------- cleanup

const children = new Set<ChildProcess>()
let work: string | undefined
let receiver: PeerNode | undefined

async function stopChild (child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) { children.delete(child); return }
  const exited = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  await exited
  clearTimeout(timer)
  children.delete(child)
}

let cleaning: Promise<void> | undefined
async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map(async c => { await stopChild(c) }))
    await Promise.resolve(receiver?.stop()).catch(() => {})
    if (work !== undefined) await rm(work, { recursive: true, force: true }).catch(() => {})
  })()
  await cleaning
}

// Last resort (an uncaught error, process.exit): nothing may outlive the run.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping child processes and removing ${work ?? 'temp files'}`)
    void cleanup().finally(() => process.exit(130))
  })
}

// ---------------------------------------------------------------- helpers

function log (line: string): void { process.stderr.write(`${line}\n`) }

async function bounded<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms: ${what}`)) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function poll (check: () => Promise<boolean>, ms: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

interface ProcStat { rss: number, hwm: number, cpuMs: number }

async function procStat (pid: number): Promise<ProcStat> {
  const [status, stat] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/stat`, 'utf8')])
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(rest[11]) + Number(rest[12])
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), cpuMs: ticks / CLK_TCK * 1000 }
}

/** Resets the kernel's peak-RSS counter (VmHWM) of `pid`; false where that is not allowed. */
async function resetPeak (pid: number): Promise<boolean> {
  return await writeFile(`/proc/${pid}/clear_refs`, '5').then(() => true, () => false)
}

/** Samples RSS of several processes until stopped; the peak also takes the kernel's VmHWM into account when `useHwm`. */
function sampleRss (pids: number[], useHwm: boolean): { stop: () => Promise<number[]> } {
  const peaks = pids.map(() => 0)
  const tick = async (): Promise<void> => {
    await Promise.all(pids.map(async (pid, i) => {
      const s = await procStat(pid).catch(() => undefined)
      if (s !== undefined) peaks[i] = Math.max(peaks[i] as number, s.rss)
    }))
  }
  void tick()
  const timer = setInterval(() => { void tick() }, SAMPLE_MS)
  return {
    stop: async () => {
      clearInterval(timer)
      await tick()
      // VmHWM covers the whole window only if it was reset when the window began.
      if (useHwm) await Promise.all(pids.map(async (pid, i) => {
        const s = await procStat(pid).catch(() => undefined)
        if (s !== undefined) peaks[i] = Math.max(peaks[i] as number, s.hwm)
      }))
      return peaks
    }
  }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000)
const mibps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000)
const fmtMiB = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MiB`

// ---------------------------------------------------------------- child senders

interface ChildMessage { t: 'ready' | 'sent' | 'error', ms?: number, cpuMs?: number, message?: string }

let senders = 0

function startSender (args: string[]): ChildProcess {
  senders += 1
  const prof = profDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `sender-${senders}-${args[0] ?? ''}-${args.at(-1) ?? ''}.cpuprofile`] : []
  const child = spawn(process.execPath, [...prof, CHILD, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(child)
  child.once('exit', () => { children.delete(child) })
  return child
}

async function childSays (child: ChildProcess, t: ChildMessage['t'], ms: number): Promise<ChildMessage> {
  return await bounded(new Promise<ChildMessage>((resolve, reject) => {
    const onMessage = (msg: ChildMessage): void => {
      if (msg.t === t) { off(); resolve(msg) } else if (msg.t === 'error') { off(); reject(new Error(`sender failed: ${msg.message ?? ''}`)) }
    }
    const onExit = (code: number | null): void => { off(); reject(new Error(`sender exited (${code}) before "${t}"`)) }
    const off = (): void => { child.off('message', onMessage); child.off('exit', onExit) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  }), ms, `sender to say ${t}`)
}

interface Measure { ms: number, senderCpuMs: number, receiverCpuMs: number }

/**
 * One transfer: the child connects and says ready; the clock starts when it
 * is told to go and stops when the receiver (this process) has every byte.
 */
async function timedTransfer (child: ChildProcess, received: { promise: Promise<void> }): Promise<Measure> {
  await childSays(child, 'ready', 30_000)
  const childPid = child.pid as number
  const childCpu0 = (await procStat(childPid)).cpuMs
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  child.send({ t: 'go' })
  await bounded(received.promise, TRANSFER_TIMEOUT_MS, 'all bytes to arrive')
  const ms = performance.now() - started
  const cpu = process.cpuUsage(cpu0)
  const senderCpuMs = (await procStat(childPid)).cpuMs - childCpu0
  await childSays(child, 'sent', 60_000)
  child.send({ t: 'exit' })
  await bounded(new Promise(resolve => { if (child.exitCode !== null) resolve(undefined); else child.once('exit', resolve) }), 30_000, 'sender to exit')
  return { ms, senderCpuMs, receiverCpuMs: (cpu.user + cpu.system) / 1000 }
}

async function rawTcp (chunkBytes: number): Promise<Measure> {
  let received = 0
  const done = Promise.withResolvers<void>()
  done.promise.catch(() => {}) // awaited later; an early failure must not count as unhandled
  const server = createServer(socket => {
    socket.on('data', (data: Buffer) => {
      received += data.length
      if (received >= total) done.resolve()
    })
    socket.on('error', err => { done.reject(err) })
  })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  try {
    const { port } = server.address() as AddressInfo
    const child = startSender(['tcp', String(port), String(total), String(chunkBytes)])
    const m = await timedTransfer(child, done)
    if (received !== total) throw new Error(`TCP receiver got ${received} of ${total} bytes`)
    return m
  } finally {
    await new Promise(resolve => server.close(resolve))
  }
}

/** The receiving libp2p node (this process); one sink per run counts the bytes of its stream. */
let sink: { received: number, done: PromiseWithResolvers<void> } | undefined

async function startReceiver (): Promise<string> {
  receiver = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], gater: {} })
  await receiver.handle(BENCH_PROTOCOL, (stream: Stream) => {
    const mine = sink
    if (mine === undefined) { stream.abort(new Error('no run in progress')); return }
    stream.addEventListener('message', evt => {
      mine.received += evt.data.byteLength
      if (mine.received >= total) mine.done.resolve()
    })
    stream.addEventListener('close', evt => { if (evt.error !== undefined) mine.done.reject(evt.error) })
  }, { maxInboundStreams: 4 })
  // The blob protocol's framing and messages, decoded and checked as the fetcher does, from memory.
  await receiver.handle(BENCH_FRAMED_PROTOCOL, (stream: Stream) => {
    const mine = sink
    if (mine === undefined) { stream.abort(new Error('no run in progress')); return }
    const framed = new FramedStream(stream, { maxMessageSize: MAX_BLOB_MESSAGE })
    void (async () => {
      for await (const raw of framed) {
        const msg = parseBlobResponse(raw)
        if (msg.t !== 'chunk') throw new Error(`unexpected ${msg.t}`)
        mine.received += msg.data.length
        if (mine.received >= total) mine.done.resolve()
      }
    })().catch((err: Error) => { mine.done.reject(err) })
  }, { maxInboundStreams: 4 })
  const address = receiver.getMultiaddrs().map(a => a.toString()).find(a => a.includes('/ip4/127.0.0.1/'))
  if (address === undefined) throw new Error('receiver has no loopback address')
  return address
}

async function bareLibp2p (address: string, chunkBytes: number, framed = false): Promise<Measure> {
  sink = { received: 0, done: Promise.withResolvers<void>() }
  sink.done.promise.catch(() => {}) // awaited later; an early failure must not count as unhandled
  try {
    const child = startSender(framed
      ? ['framed', address, BENCH_FRAMED_PROTOCOL, String(total), String(chunkBytes)]
      : ['libp2p', address, BENCH_PROTOCOL, String(total), String(chunkBytes)])
    const m = await timedTransfer(child, sink.done)
    if (sink.received !== total) throw new Error(`libp2p receiver got ${sink.received} of ${total} bytes`)
    return m
  } finally {
    sink = undefined
  }
}

interface Repeated { median: Measure, all: Measure[] }

async function repeated (what: string, fn: () => Promise<Measure>): Promise<Repeated> {
  const all: Measure[] = []
  for (let i = 0; i < runs; i++) {
    const m = await fn()
    log(`  ${what} run ${i + 1}/${runs}: ${mibps(total, m.ms).toFixed(0)} MiB/s (${(m.ms / 1000).toFixed(2)} s)`)
    all.push(m)
  }
  const ms = median(all.map(m => m.ms))
  // The run whose time is the median (or nearest), for its CPU figures.
  const pick = [...all].sort((x, y) => Math.abs(x.ms - ms) - Math.abs(y.ms - ms))[0] as Measure
  return { median: { ...pick, ms }, all }
}

// ---------------------------------------------------------------- dw nodes

interface DwNode { name: string, dir: string, peerId: string, port: number, child: ChildProcess, url: string, token: string, output: () => string }

/** The nodes of the run in progress, whose logs are shown if it fails. */
const nodes: DwNode[] = []

async function dw (args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run(process.execPath, [DW, ...args], {
    env: { ...process.env, DW_ADMIN_PASSWORD: ADMIN_PASSWORD },
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: 16 * MiB
  })
  return stdout
}

/** `dw init` (founding a mesh, or with `join` joining the mesh of its first peer) and `dw start`. */
async function startDwNode (name: string, joining = false): Promise<DwNode> {
  const dir = join(work as string, name)
  const port = await freePort()
  const init = JSON.parse(await dw(['init', '--data', dir, '--name', name, '--http', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--json', ...(joining ? ['--join'] : [])])) as { peerId: string }
  const profiled = profDir !== undefined && String(values['cpu-prof-nodes']).split(',').includes(name)
  const prof = profiled ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${name}.cpuprofile`] : []
  const child = spawn(process.execPath, [...prof, DW, 'start', '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DW_LOG_LEVEL: process.env.DW_LOG_LEVEL ?? 'warn' } })
  children.add(child)
  child.once('exit', () => { children.delete(child) })
  // The tail of the node's output (its log and errors), shown if the run fails.
  let output = ''
  const keep = (s: Buffer): void => {
    // Per-request info lines would push the warnings and errors out.
    const text = s.toString().split('\n').filter(line => !line.startsWith('{"level":30')).join('\n')
    output = (output + text).slice(-8000)
  }
  child.stderr?.on('data', keep)
  child.stdout?.on('data', keep)
  await bounded(new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (s: Buffer) => { out += s.toString(); if (out.includes('serving')) resolve() })
    child.once('exit', code => { reject(new Error(`dw start ${name} exited (${code}): ${output}`)) })
  }), 60_000, `node ${name} to start`)
  const token = JSON.parse(await readFile(join(dir, 'node-token.json'), 'utf8')) as { url: string, token: string }
  const node = { name, dir, peerId: init.peerId, port, child, url: token.url, token: token.token, output: () => output }
  nodes.push(node)
  return node
}

async function api<T> (node: DwNode, path: string): Promise<T> {
  const res = await fetch(`${node.url}${path}`, { headers: { authorization: `Bearer ${node.token}` }, signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`${node.name} GET ${path}: ${res.status} ${await res.text()}`)
  return await res.json() as T
}

interface Download { ms: number, firstByteMs: number, bytes: number, sha256: string, headerSha256: string | undefined }

/** A download that broke off, with how far it got. */
class DownloadError extends Error {
  bytes = 0
  ms = 0
}

/** GETs a file through a node's API, hashing it as it streams; times the whole response. */
async function download (node: DwNode, path: string): Promise<Download> {
  const started = performance.now()
  let bytes = 0
  const broke = (err: Error): DownloadError => {
    const out = new DownloadError(`${node.name} GET ${path}: ${err.message}`, { cause: err })
    out.bytes = bytes
    out.ms = performance.now() - started
    return out
  }
  return await bounded(new Promise<Download>((resolve, reject) => {
    const req = httpGet(`${node.url}${path}`, { headers: { authorization: `Bearer ${node.token}` } }, res => {
      const firstByteMs = performance.now() - started
      if (res.statusCode !== 200) {
        let body = ''
        res.on('data', (s: Buffer) => { body += s.toString() })
        res.on('end', () => { reject(new Error(`${node.name} GET ${path}: ${res.statusCode} ${body}`)) })
        return
      }
      const hash = createHash('sha256')
      res.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
      res.on('end', () => {
        const header = res.headers['x-content-sha256']
        resolve({ ms: performance.now() - started, firstByteMs, bytes, sha256: hash.digest('hex'), headerSha256: typeof header === 'string' ? header : undefined })
      })
      res.on('error', (err) => { reject(broke(err)) })
    })
    req.on('error', (err) => { reject(broke(err)) })
  }), TRANSFER_TIMEOUT_MS, `download from ${node.name}`)
}

/** The message of the last warning or error a node logged (pino JSON lines). */
function lastWarning (node: DwNode): string | undefined {
  const lines = node.output().split('\n').filter(line => /^\{"level":[456]0/.test(line))
  const last = lines.at(-1)
  if (last === undefined) return undefined
  try {
    const entry = JSON.parse(last) as { msg?: string, err?: { message?: string } }
    const message = entry.err?.message ?? entry.msg ?? ''
    // "could not fetch ...: <cause>" where the cause repeats: keep it once.
    const parts = message.split(': ')
    const half = parts.length % 2 === 1 ? (parts.length - 1) / 2 : -1
    const once = half > 0 && parts.slice(1, 1 + half).join(': ') === parts.slice(1 + half).join(': ') ? parts.slice(0, 1 + half).join(': ') : message
    return once.slice(0, 300)
  } catch {
    return last.slice(0, 300)
  }
}

/** Runs `fn` and adds the CPU time `node` spent meanwhile. */
async function withCpu<T extends object> (node: DwNode, fn: () => Promise<T>): Promise<T & { cpuMs: number }> {
  const pid = node.child.pid as number
  const before = (await procStat(pid)).cpuMs
  const value = await fn()
  return { ...value, cpuMs: (await procStat(pid)).cpuMs - before }
}


interface Failure { bytes: number, ms: number, error: string, nodeSaid: string | undefined }

/** Downloads through B before giving up (a broken one is retried as a client would). */
const MAX_ATTEMPTS = 3

interface MeshResult {
  failures: Failure[]
  upload: { ms: number }
  metadataMs: number
  metadataNudged: boolean
  /** Undefined when every attempt broke off. */
  fetch: (Download & { storedMs: number }) | undefined
  cpuMs: [number, number]
  local: (Download & { cpuMs: number }) | undefined
  localA: Download & { cpuMs: number }
  rss: Array<{ name: string, idle: number, before: number, peak: number }>
  peakReset: boolean
}

async function meshRun (): Promise<MeshResult> {
  const source = join(work as string, 'bench.bin')
  log(`  generating a ${sizeMiB} MiB file`)
  const expected = await writeRandomFile(source, total)
  log('  starting nodes A and B (dw start, one process each)')
  // A founds the mesh; B joins it once A, a full node, adds it to the roster.
  const [a, b] = await Promise.all([startDwNode('site-a'), startDwNode('site-b', true)]) as [DwNode, DwNode]
  await dw(['peer', 'add', `/ip4/127.0.0.1/tcp/${b.port}/p2p/${b.peerId}`, '--name', b.name, '--role', 'full', '--data', a.dir])
  await dw(['peer', 'add', `/ip4/127.0.0.1/tcp/${a.port}/p2p/${a.peerId}`, '--name', a.name, '--data', b.dir])
  await poll(async () => (await api<{ items: Array<{ peerId: string, connected?: boolean }> }>(b, '/peers')).items.some(p => p.peerId === a.peerId && p.connected === true), 30_000, 'B to connect to A', 100)
  await poll(async () => (await api<{ selfRole: string }>(b, '/nodes')).selfRole === 'full', 30_000, 'B to hold the roster naming it full', 100)
  await sleep(1000)
  const pids = [a.child.pid as number, b.child.pid as number]
  const idle = await Promise.all(pids.map(async pid => (await procStat(pid)).rss))

  const datasetId = (JSON.parse(await dw(['dataset', 'create', 'bench-blobs', '--data', a.dir, '--json'])) as { id: string }).id
  log(`  uploading on A (dw version add, ${sizeMiB} MiB)`)
  let started = performance.now()
  const version = JSON.parse(await dw(['version', 'add', datasetId, source, '--data', a.dir, '--json'], TRANSFER_TIMEOUT_MS)) as { id: string, files: Array<{ name: string, sha256: string }> }
  const upload = { ms: performance.now() - started }
  if (version.files[0]?.sha256 !== expected) throw new Error(`A stored sha256 ${version.files[0]?.sha256}, expected ${expected}`)
  await rm(source)
  started = performance.now()
  const hasVersion = async (): Promise<boolean> => (await api<{ versions: Array<{ id: string }> }>(b, `/datasets/${datasetId}`)).versions.some(v => v.id === version.id)
  let metadataNudged = false
  try {
    await poll(hasVersion, 15_000, 'B to receive the version metadata by live sync')
  } catch {
    // Seen now and then: B stays connected but its live pull stops bringing
    // A's changes. Say so, and sync by hand so the blob measurement can go on.
    metadataNudged = true
    const state = await Promise.all([api(b, '/sync/status'), api(a, '/sync/status')].map(async p => await p.catch((e: Error) => e.message)))
    log(`  WARNING: the version did not reach B by live sync within 15 s; running dw sync on B. B /sync/status ${JSON.stringify(state[0])}; A /sync/status ${JSON.stringify(state[1])}`)
    await dw(['sync', '--data', b.dir], 60_000).catch((err: Error) => { log(`  dw sync: ${err.message}`) })
    await poll(hasVersion, 45_000, 'B to receive the version metadata after dw sync')
  }
  const metadataMs = performance.now() - started
  const path = `/datasets/${datasetId}/versions/${version.id}/files/bench.bin`

  await sleep(1000)
  const before = await Promise.all(pids.map(async pid => (await procStat(pid)).rss))
  const peakReset = (await Promise.all(pids.map(resetPeak))).every(Boolean)
  const cpu0 = await Promise.all(pids.map(async pid => (await procStat(pid)).cpuMs))
  const sampler = sampleRss(pids, peakReset)
  let fetched: Download | undefined
  let storedMs = NaN
  let peaks: number[]
  const failures: Failure[] = []
  const t0 = process.hrtime.bigint()
  try {
    // A client whose download breaks off asks again; B resumes its fetch from
    // the partial file. Every broken attempt is reported and fails the run.
    for (let attempt = 1; attempt <= MAX_ATTEMPTS && fetched === undefined; attempt++) {
      log(`  downloading through B (fetched from A on demand)${attempt > 1 ? `, attempt ${attempt}` : ''}`)
      try {
        fetched = await download(b, path)
      } catch (err) {
        if (!(err instanceof DownloadError)) throw err
        await sleep(200)
        const failure = { bytes: err.bytes, ms: err.ms, error: err.message, nodeSaid: lastWarning(b) }
        failures.push(failure)
        const state = await Promise.all([api(b, '/transfers'), api(b, '/peers')].map(async p => await p.catch((e: Error) => e.message)))
        log(`  download broke off after ${fmtMiB(failure.bytes)} (${(failure.ms / 1000).toFixed(2)} s): ${failure.error}; B logged: ${failure.nodeSaid ?? '(nothing)'}; B /transfers ${JSON.stringify(state[0])}; B /peers ${JSON.stringify(state[1])}`)
      }
    }
    if (fetched !== undefined) {
      // B moves the verified bytes into its store after the last one is sent.
      started = performance.now()
      await poll(async () => (await api<{ transfers: unknown[] }>(b, '/transfers')).transfers.length === 0, TRANSFER_TIMEOUT_MS, 'B to store the blob')
      storedMs = fetched.ms + (performance.now() - started)
    }
  } finally {
    peaks = await sampler.stop()
    if (profDir !== undefined) {
      // The profiles' clock is CLOCK_MONOTONIC in microseconds, as hrtime's (in ns).
      const window = { downloadStartUs: Number(t0 / 1000n), downloadEndUs: Number(process.hrtime.bigint() / 1000n), pids: { 'site-a': pids[0], 'site-b': pids[1] } }
      await writeFile(join(profDir, 'window.json'), JSON.stringify(window, null, 2) + '\n')
    }
  }
  const cpu1 = await Promise.all(pids.map(async pid => (await procStat(pid)).cpuMs))
  if (fetched !== undefined && (fetched.bytes !== total || fetched.sha256 !== expected)) throw new Error(`download through B: ${fetched.bytes} bytes hashing ${fetched.sha256}, expected ${total} hashing ${expected}`)

  log(fetched !== undefined ? '  downloading from B again (local now) and from A (local)' : '  downloading from A (local)')
  const local = fetched !== undefined ? await withCpu(b, async () => await download(b, path)) : undefined
  const localA = await withCpu(a, async () => await download(a, path))
  for (const [label, d] of [['B local', local], ['A local', localA]] as const) {
    if (d !== undefined && (d.bytes !== total || d.sha256 !== expected)) throw new Error(`download ${label}: ${d.bytes} bytes hashing ${d.sha256}, expected ${total} hashing ${expected}`)
  }
  await Promise.all([stopChild(a.child), stopChild(b.child)])
  return {
    upload,
    metadataMs,
    metadataNudged,
    failures,
    fetch: fetched !== undefined ? { ...fetched, storedMs } : undefined,
    cpuMs: [(cpu1[0] as number) - (cpu0[0] as number), (cpu1[1] as number) - (cpu0[1] as number)],
    local,
    localA,
    rss: [a, b].map((n, i) => ({ name: n.name, idle: idle[i] as number, before: before[i] as number, peak: peaks[i] as number })),
    peakReset
  }
}

// ---------------------------------------------------------------- main

try {
  work = await mkdtemp(join(tmpdir(), 'dw-bench-blobs-'))
  if (profDir !== undefined) await mkdir(profDir, { recursive: true })
  const load0 = loadavg()[0] as number
  log(`bench-blobs: ${sizeMiB} MiB, ${runs} run(s) of (a) and (b); ${cpus().length} CPUs, load ${load0.toFixed(2)}`)

  let tcp: Repeated | undefined
  let p2p: Repeated | undefined
  let p2p256: Repeated | undefined
  let framed: Repeated | undefined
  if (values['mesh-only'] !== true) {
    log('(a) raw TCP socket')
    tcp = await repeated('raw TCP', async () => await rawTcp(MiB))
    log('(b) bare libp2p stream')
    const address = await startReceiver()
    p2p = await repeated('libp2p 1 MiB', async () => await bareLibp2p(address, MiB))
    p2p256 = await repeated('libp2p 256 KiB', async () => await bareLibp2p(address, 256 * 1024))
    framed = await repeated('blob framing 256 KiB', async () => await bareLibp2p(address, 256 * 1024, true))
    await receiver?.stop()
    receiver = undefined
  }
  log('(c) dw-mesh, two nodes')
  const mesh = await meshRun()
  const load1 = loadavg()[0] as number

  const base = tcp?.median.ms ?? NaN
  const p2pBase = p2p?.median.ms ?? NaN
  const ratio = (x: number): string => Number.isFinite(x) ? x.toFixed(2) : 'n/a'
  const row = (label: string, ms: number, note: string, cpu: number[]): string => {
    const cpuCell = cpu.map(c => (c / sizeMiB).toFixed(1)).join(' / ')
    return `| ${label} | ${(ms / 1000).toFixed(2)} s | ${mbps(total, ms).toFixed(0)} | ${mibps(total, ms).toFixed(0)} | ${ratio(base / ms)} | ${ratio(p2pBase / ms)} | ${cpuCell} | ${note} |`
  }
  const spread = (r: Repeated): string => r.all.length > 1 ? `median of ${r.all.length} (${r.all.map(m => mibps(total, m.ms).toFixed(0)).join(', ')} MiB/s)` : 'one run'
  const cpuOf = (r: Repeated): number[] => [r.median.senderCpuMs, r.median.receiverCpuMs]
  const f = mesh.fetch
  console.log(`\n### ${sizeMiB} MiB, loopback, ${cpus().length} CPUs (load ${load0.toFixed(1)} before, ${load1.toFixed(1)} after)\n`)
  console.log('| path | time | MB/s | MiB/s | vs raw TCP | vs libp2p stream | CPU ms/MiB (send / recv) | notes |')
  console.log('|---|---|---|---|---|---|---|---|')
  if (tcp !== undefined) console.log(row('(a) raw TCP socket', tcp.median.ms, `1 MiB writes; ${spread(tcp)}`, cpuOf(tcp)))
  if (p2p !== undefined) console.log(row('(b) libp2p stream, 1 MiB writes', p2p.median.ms, `TCP+Noise+Yamux; ${spread(p2p)}`, cpuOf(p2p)))
  if (p2p256 !== undefined) console.log(row('(b) libp2p stream, 256 KiB writes', p2p256.median.ms, `as the blob protocol's chunks; ${spread(p2p256)}`, cpuOf(p2p256)))
  if (framed !== undefined) console.log(row('(b) blob-protocol messages over libp2p, no disk', framed.median.ms, `256 KiB \`{t:'chunk'}\` CBOR messages via FramedStream, sends awaited; ${spread(framed)}`, cpuOf(framed)))
  const said = [...new Set(mesh.failures.map(x => x.nodeSaid ?? x.error))]
  const brokeOff = `${mesh.failures.map((x, i) => `attempt ${i + 1} broke off after ${fmtMiB(x.bytes)}`).join(', ')} (B logged: ${said.join(' / ')})`
  const meshLabel = '(c) dw-mesh: GET via B, fetched from A'
  const totalCpu = mesh.cpuMs.map(c => `${(c / 1000).toFixed(1)} s`).join(' / ')
  if (f === undefined) {
    console.log(`| ${meshLabel} | **FAILED** | n/a | n/a | n/a | n/a | ${totalCpu} | every download broke off: ${brokeOff}; CPU: seconds in total over all attempts |`)
  } else if (mesh.failures.length > 0) {
    console.log(`| ${meshLabel} | ${(f.ms / 1000).toFixed(2)} s (retry) | n/a | n/a | n/a | n/a | ${totalCpu} | **FAILED ${mesh.failures.length} time(s) first**: ${brokeOff}; attempt ${mesh.failures.length + 1} resumed B's partial fetch, so its rate is not a clean figure; CPU: seconds in total over all attempts |`)
  } else {
    console.log(row(meshLabel, f.ms, `first byte after ${f.firstByteMs.toFixed(0)} ms; sha256 verified; B stored it ${((f.storedMs - f.ms) / 1000).toFixed(2)} s after the last byte`, mesh.cpuMs))
  }
  if (mesh.local !== undefined) console.log(row('(d) GET via B again (local)', mesh.local.ms, 'from B\'s blob store; CPU: B', [mesh.local.cpuMs]))
  console.log(row('(d) GET via A (local)', mesh.localA.ms, 'from A\'s blob store; CPU: A', [mesh.localA.cpuMs]))
  console.log(`\nUpload on A (\`dw version add\`): ${mibps(total, mesh.upload.ms).toFixed(0)} MiB/s (${(mesh.upload.ms / 1000).toFixed(2)} s); metadata reached B ${(mesh.metadataMs / 1000).toFixed(2)} s after the upload returned${mesh.metadataNudged ? ' (only after `dw sync` on B: live sync did not deliver it within 15 s)' : ''}.`)
  console.log('CPU for (c): A (sender) / B (receiver, also serving the HTTP client); the client itself is not counted.\n')
  console.log('| node | RSS idle | RSS before download | peak RSS during download | growth over idle |')
  console.log('|---|---|---|---|---|')
  let tooBig = false
  for (const r of mesh.rss) {
    const growth = r.peak - r.idle
    if (growth / MiB > GROWTH_LIMIT_MIB) tooBig = true
    console.log(`| ${r.name === 'site-a' ? 'A (sender)' : 'B (receiver)'} | ${fmtMiB(r.idle)} | ${fmtMiB(r.before)} | ${fmtMiB(r.peak)} | ${(growth / MiB).toFixed(0)} MiB |`)
  }
  console.log(`\nPeak = max of ${SAMPLE_MS} ms samples${mesh.peakReset ? ' and the kernel\'s VmHWM, reset just before the download' : ' (VmHWM could not be reset)'}. Limit: ${GROWTH_LIMIT_MIB} MiB over idle.`)
  const same = f !== undefined && f.sha256 === f.headerSha256 && f.bytes === total
  const firstTime = mesh.failures.length === 0
  const identical = f === undefined ? `NO: all ${MAX_ATTEMPTS} downloads broke off` : `${same ? 'yes' : 'NO'}${firstTime ? '' : ` (only on attempt ${mesh.failures.length + 1}: ${mesh.failures.length} download(s) broke off first)`}`
  console.log(`Byte-identical through B: ${identical}; memory within ${GROWTH_LIMIT_MIB} MiB of idle on both nodes: ${tooBig ? 'NO' : 'yes'}.`)
  console.log(`Acceptance (downloads byte-identical through B, memory within ${GROWTH_LIMIT_MIB} MiB of idle): ${same && firstTime && !tooBig ? 'PASS' : 'FAIL'}`)
  if (!same || !firstTime || tooBig) process.exitCode = 1
} catch (err) {
  console.error(`bench-blobs failed: ${(err as Error).stack ?? String(err)}`)
  for (const n of nodes) if (n.output() !== '') console.error(`--- ${n.name} output (last 8000 characters):\n${n.output()}`)
  process.exitCode = 1
} finally {
  await cleanup()
}
