/**
 * Where a node's memory goes, in the two cases issue 11 bounds (RSS at most
 * 250 MB), each with the node in a child process of its own:
 *
 * - `--records N` (default): node A (this process) holds N datasets; node B
 *   pulls them all in an initial sync.
 * - `--creates N`: one node takes N dataset creates through its HTTP API
 *   (`--concurrency` in flight, from this process).
 *
 * The node reports at each step process.memoryUsage, before and after a
 * full GC, and where its resident memory is (/proc/self/smaps): the V8 heap,
 * Automerge's wasm memories (the node's and the document checker's), the
 * C heap (LevelDB, libuv, OpenSSL) and mapped files, so a leak (live heap
 * that stays) can be told from memory a process merely keeps.
 *
 * The node's process starts as `dw start` starts it: with the flags and
 * environment of src/start/process-memory.ts (`--plain`: without them, to
 * compare), then `--node-flags`.
 *
 * `DW_MEMORY_MAPS=1` also lists the node's anonymous mappings, grouped by
 * size, on stderr at each step (V8's pages are the many of 256 KiB).
 *
 * `--source DIR` keeps A's data directory there and reuses it on the next
 * run (same records, none of the time it takes to build them).
 *
 *   node scripts/sync-memory.ts [--records 30000] [--creates 10000] [--concurrency 32] [--plain] [--source DIR]
 *     [--node-flags=--max-semi-space-size=8]   # more V8/Node flags for the node's process
 */
import { fork } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { rename } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import { parseArgs } from 'node:util'

const ROLE_NODE = '--memory-node'
/** Bound on each wait: the sync, or the creates. */
const TIMEOUT_MS = 1_800_000
/** How often the sync's progress is shown (a stalled sync is told from a slow one). */
const PROGRESS_MS = 30_000
/** How often the node samples its RSS for the peak. */
const PEAK_SAMPLE_MS = 100

/** What the node reports at each step (bytes). */
interface Sample {
  step: string
  rss: number
  peakRss: number
  heapUsed: number
  heapTotal: number
  /** Of the JS heap, what is resident (V8's own count). */
  heapPhysical: number
  /** What V8 itself mallocs (compiler zones and the like), part of the C heap. */
  v8Malloced: number
  newSpace: number
  external: number
  arrayBuffers: number
  /** Size of this thread's Automerge wasm memory (it never shrinks). */
  wasmSize: number
  /** Resident pages of every wasm memory in the process (the node's and the checker worker's). */
  wasmRss: number
  wasmCount: number
  /** glibc's main arena ([heap]) and its thread arenas (64 MiB-aligned anonymous mappings). */
  cHeapRss: number
  fileRss: number
  /** Resident anonymous memory that is none of the above: V8's heap pages, thread stacks. */
  otherAnonRss: number
  /** Of the RSS, pages freed with MADV_FREE that the kernel has not taken back yet. */
  lazyFree: number
}

type Mode = { kind: 'sync', records: number } | { kind: 'creates', creates: number, concurrency: number }

if (process.argv.includes(ROLE_NODE)) {
  await nodeRole(JSON.parse(process.argv[process.argv.indexOf(ROLE_NODE) + 1] as string) as Mode & { dir: string, address?: string })
} else {
  await driver()
}

async function driver (): Promise<void> {
  const { values } = parseArgs({ options: { records: { type: 'string' }, creates: { type: 'string' }, concurrency: { type: 'string' }, 'node-flags': { type: 'string' }, plain: { type: 'boolean' }, source: { type: 'string' } } })
  const u = await import('./bench-util.ts')
  const mode: Mode = values.creates !== undefined
    ? { kind: 'creates', creates: u.intOption(values.creates, 'creates', 10_000), concurrency: Math.max(1, u.intOption(values.concurrency, 'concurrency', 32)) }
    : { kind: 'sync', records: u.intOption(values.records, 'records', 30_000) }
  const { memoryRelaunch } = await import('../src/start/process-memory.ts')
  const relaunch = values.plain === true ? undefined : memoryRelaunch(process.execArgv, process.env)
  const nodeFlags = [...relaunch?.flags ?? [], ...(values['node-flags'] ?? '').split(/\s+/).filter(f => f !== '')]
  const nodeEnv = { ...process.env, ...relaunch?.env }
  const source = values.source === undefined ? undefined : resolve(values.source)
  const reused = source !== undefined && existsSync(source)
  const a = mode.kind === 'sync' ? await u.startBenchNode(reused ? source : await u.initBenchDir('dw-sync-memory-a-')) : undefined
  let bDir: string | undefined
  try {
    if (a !== undefined && mode.kind === 'sync' && !reused) {
      process.stderr.write(`building ${mode.records} datasets on A\n`)
      await u.createDatasetsDirect(a.node.docs, a.node.config.adminUserId, mode.records, { concurrency: 64, offset: 0, onProgress: () => {} })
      await a.node.docs.flush()
    }
    // Initialised here, as `dw init` would: the node's process only starts it, as `dw start` does.
    bDir = await u.initBenchDir('dw-memory-node-', { join: mode.kind === 'sync' })
    if (mode.kind === 'sync') {
      // The default hourly quota of new documents per peer (100,000) would
      // stop an initial sync of 100,000 records just short of its end.
      const file = join(bDir, 'config.json')
      const config = JSON.parse(readFileSync(file, 'utf8')) as { limits?: { sync?: unknown } }
      const room = { documents: 4 * mode.records, newDocuments: 2 * mode.records }
      config.limits = { ...config.limits, sync: { perSession: room, perHour: room } }
      writeFileSync(file, JSON.stringify(config, null, 2))
    }
    const arg = JSON.stringify({ ...mode, dir: bDir, ...(a === undefined ? {} : { address: u.loopbackAddress(a.node) }) })
    const child = fork(import.meta.filename, [ROLE_NODE, arg], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...process.execArgv, ...nodeFlags], env: nodeEnv })
    const samples: Sample[] = []
    let workMs = 0
    /** CPU time of the node's process (all its threads) over the work: steadier than wall time on a shared machine. */
    let nodeCpuMs = 0
    let parkedMax = 0
    const done = new Promise<void>((resolve, reject) => {
      child.on('message', (m: { addr?: string, node?: { url: string, token: string }, sample?: Sample, syncMs?: number, cpuMs?: number, parkedMax?: number }) => {
        // A founded the mesh; B joined it: A adds B to its peer book and to the roster (as full).
        if (m.addr !== undefined && a !== undefined) void u.httpJson(a.node.url, 'POST', '/peers', { multiaddr: m.addr, role: 'full' }, a.token).then(() => child.send('go'), reject)
        if (m.node !== undefined && mode.kind === 'creates') {
          const { url, token } = m.node
          const started = u.now()
          void u.pool(mode.creates, mode.concurrency, async (i) => { await u.httpJson(url, 'POST', '/datasets', u.datasetPayload(i), token) })
            .then(() => { workMs = u.now() - started; child.send('go') }, reject)
        }
        if (m.sample !== undefined) samples.push(m.sample)
        if (m.syncMs !== undefined) workMs = m.syncMs
        if (m.cpuMs !== undefined) nodeCpuMs = m.cpuMs
        if (m.parkedMax !== undefined) parkedMax = m.parkedMax
      })
      child.on('exit', code => { code === 0 ? resolve() : reject(new Error(`node process exited with ${code}`)) })
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 2 * TIMEOUT_MS)
    try {
      await done
    } finally {
      clearTimeout(timer)
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    const m = u.mib
    const rows = samples.map(s => [s.step, m(s.rss), m(s.peakRss), m(s.heapUsed), `${m(s.heapTotal)} (${m(s.heapPhysical)})`, m(s.newSpace), m(s.external), m(s.arrayBuffers), `${m(s.wasmRss)} (${s.wasmCount}; node's ${m(s.wasmSize)})`, `${m(s.cHeapRss)} (V8 ${m(s.v8Malloced)})`, m(s.fileRss), m(s.otherAnonRss), m(s.lazyFree)])
    console.log(`## sync-memory (${new Date().toISOString().slice(0, 16)}Z)\n\nMachine: ${u.machineLine()}\n`)
    if (nodeFlags.length > 0) console.log(`Node's flags: \`${nodeFlags.join(' ')}\`\n`)
    const mallocEnv = Object.entries(nodeEnv).filter(([k]) => k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES')
    if (mallocEnv.length > 0) console.log(`Environment: \`${mallocEnv.map(([k, v]) => `${k}=${v}`).join(' ')}\`\n`)
    if (mode.kind === 'sync') console.log(`B pulled ${mode.records.toLocaleString('en')} datasets from A in ${(workMs / 1000).toFixed(2)} s (B's CPU: ${(nodeCpuMs / 1000).toFixed(2)} s, all threads); at most ${parkedMax.toLocaleString('en')} changes waited at once for the roster naming B (every session offers the roster first, so this should be 0). B's memory:\n`)
    else console.log(`The node took ${mode.creates.toLocaleString('en')} creates through POST /datasets, ${mode.concurrency} in flight, in ${(workMs / 1000).toFixed(2)} s (${u.rate(mode.creates, workMs)}; the node's CPU: ${(nodeCpuMs / 1000).toFixed(2)} s, all threads). Its memory:\n`)
    console.log(u.table(['step', 'RSS', 'peak RSS', 'JS heap used', 'JS heap total (resident)', 'of it new space', 'external', 'array buffers', 'wasm RSS (memories; node\'s size)', 'C heap RSS (of it V8\'s mallocs)', 'file RSS', 'other anon RSS', 'lazy free'], rows))
  } finally {
    await a?.node.stop()
    if (a !== undefined && source !== undefined && !reused) await rename(a.dataDir, source)
    else if (a !== undefined && !reused) await u.removeDir(a.dataDir)
    if (bDir !== undefined) await u.removeDir(bDir)
  }
}

/** What this script uses of WebAssembly (not in the TypeScript lib this project compiles against). */
interface WasmMemory { buffer: ArrayBuffer }
interface Wasm { Instance: new (...args: unknown[]) => { exports: Record<string, unknown> }, Memory: new (...args: unknown[]) => WasmMemory }

function cpuMs (usage: NodeJS.CpuUsage): number { return (usage.user + usage.system) / 1000 }

/** Every wasm memory this thread instantiates from now on: Automerge's is reachable no other way. */
function watchWasmMemories (): WasmMemory[] {
  const wasm = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly
  const memories: WasmMemory[] = []
  wasm.Instance = new Proxy(wasm.Instance, {
    construct (target, args) {
      const instance = Reflect.construct(target, args) as { exports: Record<string, unknown> }
      for (const e of Object.values(instance.exports)) if (e instanceof wasm.Memory) memories.push(e)
      return instance
    }
  })
  return memories
}

/** Resident memory by kind, from /proc/self/smaps. */
function residentByKind (): { wasmRss: number, wasmCount: number, cHeapRss: number, fileRss: number, anonRss: number, lazyFree: number } {
  const out = { wasmRss: 0, wasmCount: 0, cHeapRss: 0, fileRss: 0, anonRss: 0, lazyFree: 0 }
  let text: string
  try { text = readFileSync('/proc/self/smaps', 'utf8') } catch { return out }
  const maps: Array<{ start: number, end: number, perms: string, path: string, rss: number }> = []
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (header !== null) maps.push({ start: parseInt(header[1] as string, 16), end: parseInt(header[2] as string, 16), perms: header[3] as string, path: header[4] ?? '', rss: 0 })
    else if (line.startsWith('Rss:') && maps.length > 0) (maps.at(-1) as { rss: number }).rss = Number(/(\d+)/.exec(line)?.[1] ?? 0) * 1024
    // Pages given back with MADV_FREE: still counted in RSS until the kernel needs them.
    else if (line.startsWith('LazyFree:')) out.lazyFree += Number(/(\d+)/.exec(line)?.[1] ?? 0) * 1024
  }
  const ARENA = 64 * 1024 * 1024
  if (process.env.DW_MEMORY_MAPS === '1') {
    const bySize = new Map<string, { n: number, rss: number }>()
    for (const m of maps) {
      if (m.path.startsWith('/') || m.rss === 0) continue
      const k = `${m.perms} ${m.path} ${((m.end - m.start) / 1048576).toFixed(2)}M`
      const e = bySize.get(k) ?? { n: 0, rss: 0 }
      e.n += 1; e.rss += m.rss
      bySize.set(k, e)
    }
    process.stderr.write([...bySize].sort((x, y) => y[1].rss - x[1].rss).slice(0, 25).map(([k, e]) => `${k} x${e.n} rss ${(e.rss / 1048576).toFixed(1)}M`).join('\n') + '\n---\n')
  }
  for (const [i, m] of maps.entries()) {
    const next = maps[i + 1]
    if (m.path.startsWith('/')) out.fileRss += m.rss
    // V8 reserves 8 GiB per wasm memory: the accessible part, then the rest inaccessible.
    else if (m.path === '' && m.perms.startsWith('rw') && next !== undefined && next.start === m.end && next.perms.startsWith('---') && next.end - next.start >= 4 * 1024 * 1024 * 1024) { out.wasmRss += m.rss; out.wasmCount += 1 }
    // glibc: the main arena ([heap]) and the arenas of other threads (64 MiB-aligned, at most 64 MiB).
    else if (m.path === '[heap]' || (m.path === '' && m.start % ARENA === 0 && m.end - m.start <= ARENA)) out.cHeapRss += m.rss
    else if (m.path === '' || m.path.startsWith('[anon')) out.anonRss += m.rss
  }
  return out
}

async function nodeRole (mode: Mode & { dir: string, address?: string }): Promise<void> {
  const memories = watchWasmMemories()
  // Loaded only now, so that Automerge's wasm instance is made under the watch above.
  const u = await import('./bench-util.ts')
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  let peakRss = 0
  const peak = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()) }, PEAK_SAMPLE_MS)
  const sample = (step: string): void => {
    const mem = process.memoryUsage()
    peakRss = Math.max(peakRss, mem.rss)
    const spaces = v8.getHeapSpaceStatistics()
    const r = residentByKind()
    const s: Sample = {
      step,
      rss: mem.rss,
      peakRss,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      heapPhysical: v8.getHeapStatistics().total_physical_size,
      v8Malloced: v8.getHeapStatistics().malloced_memory,
      newSpace: spaces.find(x => x.space_name === 'new_space')?.space_size ?? 0,
      external: mem.external,
      arrayBuffers: mem.arrayBuffers,
      wasmSize: memories.reduce((n, w) => n + w.buffer.byteLength, 0),
      wasmRss: r.wasmRss,
      wasmCount: r.wasmCount,
      cHeapRss: r.cHeapRss,
      fileRss: r.fileRss,
      otherAnonRss: r.anonRss,
      lazyFree: r.lazyFree
    }
    process.send?.({ sample: s })
  }
  const b = await u.startBenchNode(mode.dir)
  // Every dataset B stores (what arrives before the roster naming B waits for it, then is judged again).
  const stored = new Set<string>()
  b.node.docs.on('change', e => { if (e.key.startsWith('dataset/')) stored.add(e.key) })
  const settle = async (what: string): Promise<void> => {
    sample(what)
    gc()
    sample(`${what}, after GC`)
    await u.sleep(5000)
    gc()
    sample(`${what}, 5 s idle, after GC`)
    // V8's memory reducer starts 8 s after the heap last grew (--gc-memory-reducer-start-delay-ms): a node at rest.
    await u.sleep(10_000)
    sample(`${what}, 15 s idle`)
  }
  try {
    gc()
    sample('started (after GC)')
    peakRss = 0
    if (mode.kind === 'creates') {
      const cpu = process.cpuUsage()
      process.send?.({ node: { url: b.node.url, token: b.token } })
      await new Promise(resolve => process.once('message', resolve))
      await b.node.docs.flush()
      process.send?.({ cpuMs: cpuMs(process.cpuUsage(cpu)) })
      await settle(`${mode.creates} creates`)
    } else {
      process.send?.({ addr: u.loopbackAddress(b.node) })
      await new Promise(resolve => process.once('message', resolve))
      const started = Date.now()
      const cpu = process.cpuUsage()
      await u.httpJson(b.node.url, 'POST', '/peers', { multiaddr: mode.address }, b.token)
      let parkedMax = 0
      let told = Date.now()
      while (stored.size < mode.records) {
        if (Date.now() - told >= PROGRESS_MS) { told = Date.now(); process.stderr.write(`B holds ${stored.size} of ${mode.records} datasets after ${Math.round((told - started) / 1000)} s\n`) }
        parkedMax = Math.max(parkedMax, b.node.docs.parkedCount)
        if (Date.now() - started > TIMEOUT_MS) throw new Error(`sync incomplete after ${TIMEOUT_MS} ms (${stored.size} of ${mode.records}; ${b.node.docs.parkedCount} waiting for the roster)`)
        await u.sleep(20)
      }
      process.send?.({ syncMs: Date.now() - started, cpuMs: cpuMs(process.cpuUsage(cpu)), parkedMax })
      // Every document is judged (signatures and rules) as it arrives: no later check to measure.
      await settle('synced')
    }
  } finally {
    clearInterval(peak)
    await b.node.stop()
  }
  process.disconnect?.()
}
