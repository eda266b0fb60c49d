/**
 * Single-node benchmark: record writes through the real HTTP API, start-up
 * time and memory with an empty and a large store.
 *
 *   npm run bench:local                      # full size
 *   npm run bench:local -- --quick           # a smaller, faster run
 *   node scripts/bench-local.ts --records 20000 --bulk 5000 --seq 500 --runs 3
 *
 * Options:
 *   --seq N          sequential creates timed one by one (default 1000)
 *   --bulk N         creates for the bulk rate (default 10000)
 *   --concurrency N  requests in flight during the bulk run (default 32)
 *   --records N      records in the large store for the start-up test (default 100000)
 *   --runs N         start-up runs per store, each in a fresh process (default 3)
 *   --keep           keep the temp directories (prints where they are)
 *
 * Output: progress on stderr, a markdown report on stdout.
 */
import { spawn } from 'node:child_process'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  bytes, count, createDatasetsDirect, datasetPayload, httpJson, initBenchDir, intOption, machineLine, median, mib, ms, now,
  pool, progress, rate, ratio, removeTempDirs, startBenchNode, summarize, table, withTimeout
} from './bench-util.ts'

const { values } = parseArgs({
  options: {
    seq: { type: 'string' },
    bulk: { type: 'string' },
    concurrency: { type: 'string' },
    records: { type: 'string' },
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false }
  }
})
const quick = values.quick === true
const SEQ = intOption(values.seq, 'seq', quick ? 200 : 1000)
const BULK = intOption(values.bulk, 'bulk', quick ? 2000 : 10_000)
const CONCURRENCY = Math.max(1, intOption(values.concurrency, 'concurrency', 32))
const RECORDS = intOption(values.records, 'records', quick ? 10_000 : 100_000)
const RUNS = Math.max(1, intOption(values.runs, 'runs', quick ? 1 : 3))
const WARMUP = 50
const CHILD = new URL('./bench-start-child.ts', import.meta.url).pathname

interface StartSample { importMs: number, startMs: number, sinceProcessStartMs: number, rss: number, heapUsed: number, rssIdle: number, wallMs: number }

/** Starts the node in `dir` in a fresh process and returns what it measured. */
async function measureStart (dir: string): Promise<StartSample> {
  const started = now()
  const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await withTimeout(new Promise<number | null>(resolve => { child.on('close', resolve) }), 120_000, `start-up child on ${dir}`)
    .catch((e: unknown) => { child.kill('SIGKILL'); throw e })
  if (code !== 0) throw new Error(`start-up child exited ${String(code)}: ${err.slice(0, 2000)}`)
  return { ...JSON.parse(out.trim().split('\n').at(-1) as string), wallMs: now() - started }
}

async function measureStarts (dir: string, label: string): Promise<StartSample[]> {
  const samples: StartSample[] = []
  for (let i = 0; i < RUNS; i++) {
    const s = await measureStart(dir)
    progress(`start ${label} run ${i + 1}/${RUNS}: startNode->healthz ${ms(s.startMs)}, imports ${ms(s.importMs)}, rss ${mib(s.rss)}`)
    samples.push(s)
  }
  return samples
}

async function duBytes (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size
  }
  return total
}

async function main (): Promise<void> {
  progress(`bench-local: seq ${SEQ}, bulk ${BULK} x${CONCURRENCY}, large store ${RECORDS}, ${RUNS} start-up run(s) each`)

  // 1. Writes through the HTTP API.
  const dir = await initBenchDir('dw-bench-local-')
  const n = await startBenchNode(dir)
  let seqLat: number[] = []
  let bulkMs = 0
  let bulkLat: number[] = []
  try {
    const create = async (i: number): Promise<number> => {
      const t = now()
      await httpJson(n.node.url, 'POST', '/datasets', datasetPayload(i), n.token)
      return now() - t
    }
    for (let i = 0; i < WARMUP; i++) await create(1_000_000 + i)
    progress(`sequential creates: ${SEQ}`)
    for (let i = 0; i < SEQ; i++) seqLat.push(await create(i))
    progress(`bulk creates: ${BULK}, ${CONCURRENCY} in flight`)
    const t = now()
    await pool(BULK, CONCURRENCY, async (i) => { bulkLat.push(await create(SEQ + i)) })
    bulkMs = now() - t
  } finally {
    await n.node.stop()
  }
  const seqS = summarize(seqLat)
  const bulkS = summarize(bulkLat)
  seqLat = []
  bulkLat = []

  // 2. Start-up and memory, empty store (just the admin account).
  const emptyDir = await initBenchDir('dw-bench-empty-')
  const empty = await measureStarts(emptyDir, 'empty')

  // 3. The large store, built in-process straight through the DocStore.
  const bigDir = await initBenchDir('dw-bench-big-')
  progress(`building a ${count(RECORDS)}-record store through the DocStore`)
  const big = await startBenchNode(bigDir)
  const buildStart = now()
  try {
    await createDatasetsDirect(big.node.docs, big.node.config.adminUserId, RECORDS, {
      concurrency: 64,
      onProgress: done => { progress(`  ${count(done)} created, ${rate(done, now() - buildStart)}`) }
    })
    await big.node.docs.flush()
  } finally {
    await big.node.stop()
  }
  const buildMs = now() - buildStart
  const bigSize = await duBytes(join(bigDir, 'db'))
  const full = await measureStarts(bigDir, `${count(RECORDS)} records`)

  const med = (xs: StartSample[], f: (s: StartSample) => number): number => median(xs.map(f))
  const e = { start: med(empty, s => s.startMs), imp: med(empty, s => s.importMs), proc: med(empty, s => s.sinceProcessStartMs), rss: med(empty, s => s.rss), rssIdle: med(empty, s => s.rssIdle), heap: med(empty, s => s.heapUsed) }
  const f = { start: med(full, s => s.startMs), imp: med(full, s => s.importMs), proc: med(full, s => s.sinceProcessStartMs), rss: med(full, s => s.rss), rssIdle: med(full, s => s.rssIdle), heap: med(full, s => s.heapUsed) }
  const big100 = `${count(RECORDS)} records`

  const lines: string[] = []
  lines.push(`## bench:local (${new Date().toISOString().slice(0, 16)}Z)`, '')
  lines.push(`Machine: ${machineLine()}`, '')
  lines.push('### Writes through the HTTP API (fetch over loopback, ~500-byte dataset bodies)', '')
  lines.push(table(['measure', 'value', 'notes'], [
    ['create latency p50 (sequential)', ms(seqS.p50), `${count(seqS.n)} creates, one at a time, after ${WARMUP} warm-up`],
    ['create latency p99 (sequential)', ms(seqS.p99), `mean ${ms(seqS.mean)}, max ${ms(seqS.max)}`],
    ['sequential create rate', rate(seqS.n, seqS.mean * seqS.n), 'one fsync per create'],
    [`bulk create rate (${CONCURRENCY} in flight)`, rate(BULK, bulkMs), `${count(BULK)} creates in ${ms(bulkMs)}; ${ratio(seqS.mean, bulkMs / BULK)} the sequential rate`],
    ['bulk create latency p50 / p99', `${ms(bulkS.p50)} / ${ms(bulkS.p99)}`, `per request with ${CONCURRENCY} in flight`]
  ]), '')
  lines.push(`### Start-up and memory (each run a fresh process; median of ${RUNS})`, '')
  lines.push(table(['store', 'startNode -> /healthz', 'module imports', 'process start -> /healthz', 'RSS after start', 'RSS after 1 s', 'JS heap'], [
    ['empty (admin only)', ms(e.start), ms(e.imp), ms(e.proc), mib(e.rss), mib(e.rssIdle), mib(e.heap)],
    [big100, ms(f.start), ms(f.imp), ms(f.proc), mib(f.rss), mib(f.rssIdle), mib(f.heap)],
    [`ratio ${big100} / empty`, ratio(f.start, e.start), ratio(f.imp, e.imp), ratio(f.proc, e.proc), ratio(f.rss, e.rss), ratio(f.rssIdle, e.rssIdle), ratio(f.heap, e.heap)]
  ]), '')
  lines.push(`Large store built in-process through DocStore.create (64 at a time): ${count(RECORDS)} records in ${ms(buildMs)} (${rate(RECORDS, buildMs)}); LevelDB on disk ${bytes(bigSize)} (${Math.round(bigSize / Math.max(1, RECORDS))} B/record).`)
  console.log(lines.join('\n'))

  if (values.keep === true) {
    console.error(`kept: ${dir} ${emptyDir} ${bigDir}`)
  } else {
    await removeTempDirs()
  }
}

try {
  await main()
} catch (err) {
  console.error(err)
  if (values.keep !== true) await removeTempDirs()
  process.exitCode = 1
}
