/**
 * Shared helpers for the benchmark scripts: timing, percentiles, markdown
 * tables, temp directories, bounded waits, benchmark data and nodes.
 * Nothing here is used by the node itself.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, loadavg, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { initNode, startNode, type RunningNode } from '../src/node.ts'
import { docKey, newId } from '../src/crdt/keys.ts'
import { initDataset, type DatasetInput } from '../src/crdt/records/dataset.ts'
import type { DocStore } from '../src/crdt/doc-store.ts'

export const ADMIN_PASSWORD = 'bench admin password 1'

// ---------------------------------------------------------------- timing

export function now (): number { return performance.now() }

/** Runs `fn` and returns its result and how long it took in ms. */
export async function timed<T> (fn: () => Promise<T>): Promise<{ value: T, ms: number }> {
  const start = now()
  const value = await fn()
  return { value, ms: now() - start }
}

export interface Summary { n: number, min: number, p50: number, p90: number, p99: number, max: number, mean: number }

/** Nearest-rank percentile of ascending `sorted` (p in 0..100). */
export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number
}

export function summarize (samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b)
  return {
    n: s.length,
    min: s[0] ?? NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s.at(-1) ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)
  }
}

export function median (samples: number[]): number { return summarize(samples).p50 }

// ---------------------------------------------------------------- formatting

export function ms (v: number, digits = 1): string {
  if (!Number.isFinite(v)) return 'n/a'
  if (v >= 10_000) return `${(v / 1000).toFixed(2)} s`
  return `${v.toFixed(v < 10 ? Math.max(digits, 2) : digits)} ms`
}

export function secs (vMs: number): string { return Number.isFinite(vMs) ? `${(vMs / 1000).toFixed(2)} s` : 'n/a' }

export function rate (count: number, vMs: number): string {
  if (!Number.isFinite(vMs) || vMs <= 0) return 'n/a'
  return `${Math.round(count / (vMs / 1000)).toLocaleString('en-US')}/s`
}

export function mib (bytes: number): string { return `${(bytes / 1024 / 1024).toFixed(1)} MiB` }

export function bytes (n: number): string {
  if (n >= 1024 * 1024) return mib(n)
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${n} B`
}

export function ratio (a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a'
  return `${(a / b).toFixed(2)}x`
}

export function count (n: number): string { return n.toLocaleString('en-US') }

/** A markdown table (GitHub style), columns padded for the terminal. */
export function table (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ') + ' |'
  return [line(headers), '| ' + widths.map(w => '-'.repeat(w)).join(' | ') + ' |', ...rows.map(line)].join('\n')
}

export function machineLine (): string {
  const cpu = cpus()
  return `${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${mib(totalmem())} RAM, Node ${process.versions.node}, ${process.platform} ${process.arch}; load average at report time ${loadavg().map(l => l.toFixed(2)).join(' ')}`
}

/** Progress on stderr so stdout stays a clean report. */
export function progress (msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

// ---------------------------------------------------------------- bounds

export async function sleep (msDelay: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, msDelay))
}

/** Rejects when `promise` takes longer than `ms`: every wait in a benchmark is bounded. */
export async function withTimeout<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)) }, timeoutMs)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `check` every `intervalMs` until true; throws after `timeoutMs`. */
export async function waitUntil (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string, intervalMs = 5): Promise<void> {
  const deadline = now() + timeoutMs
  while (true) {
    if (await check()) return
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** Runs `fn(i)` for i in [0, n) with at most `concurrency` in flight. */
export async function pool (n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      await fn(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker))
}

// ---------------------------------------------------------------- temp dirs

const tempDirs = new Set<string>()

export async function tempDir (prefix = 'dw-bench-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export async function removeDir (dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

export async function removeTempDirs (): Promise<void> {
  for (const dir of [...tempDirs]) await removeDir(dir).catch(() => {})
}

// ---------------------------------------------------------------- data

const WORDS = ['soil', 'ocean', 'survey', 'clinic', 'station', 'sensor', 'sample', 'camp', 'ship', 'temperature',
  'salinity', 'humidity', 'wind', 'pressure', 'transect', 'core', 'plankton', 'lidar', 'drone', 'patient']

function words (seed: number, n: number): string {
  const out: string[] = []
  let x = (seed * 2654435761) >>> 0
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out.push(WORDS[(x >>> 16) % WORDS.length] as string)
  }
  return out.join(' ')
}

/** A dataset create body of roughly 500 bytes of JSON (name, description, tags, metadata). */
export function datasetPayload (i: number): DatasetInput {
  return {
    name: `dataset ${i} ${words(i, 3)}`,
    description: `Field data set ${i}: ${words(i + 7, 32)}.`,
    tags: ['bench', `site-${i % 17}`, `year-${2000 + (i % 25)}`],
    metadata: {
      site: `site-${i % 17}`,
      instrument: words(i + 3, 2),
      lat: Number((((i * 37) % 18000) / 100 - 90).toFixed(2)),
      lon: Number((((i * 53) % 36000) / 100 - 180).toFixed(2)),
      rows: (i * 7919) % 1_000_000,
      license: 'CC-BY-4.0',
      contact: `team-${i % 11}@example.org`
    }
  }
}

/**
 * Creates `n` datasets directly in the document store (no HTTP), `concurrency`
 * at a time so group commit shares fsyncs. Returns the keys and the summed
 * JSON size of the create payloads.
 */
export async function createDatasetsDirect (docs: DocStore, ownerId: string, n: number, options: { concurrency?: number, offset?: number, onProgress?: (done: number) => void } = {}): Promise<{ keys: string[], payloadBytes: number }> {
  const keys: string[] = new Array(n)
  let payloadBytes = 0
  let done = 0
  const offset = options.offset ?? 0
  await pool(n, options.concurrency ?? 64, async (i) => {
    const input = datasetPayload(offset + i)
    payloadBytes += Buffer.byteLength(JSON.stringify(input))
    const id = newId()
    const key = docKey('dataset', id)
    await docs.create(key, doc => { initDataset(doc, 'dataset', id, input, { userId: ownerId, at: new Date().toISOString() }) }, { author: ownerId })
    keys[i] = key
    done += 1
    if (done % 10_000 === 0) options.onProgress?.(done)
  })
  return { keys, payloadBytes }
}

// ---------------------------------------------------------------- nodes and HTTP

export interface BenchNode {
  node: RunningNode
  dataDir: string
  token: string
  headers: Record<string, string>
}

/**
 * Initialises a node in a fresh temp dir (HTTP and libp2p on 127.0.0.1,
 * free ports). It founds a mesh of its own, or with `join` takes the mesh of
 * the first peer that syncs with it (a full node there must enrol it: `enrol`).
 */
export async function initBenchDir (prefix = 'dw-bench-', options: { join?: boolean } = {}): Promise<string> {
  const dataDir = await tempDir(prefix)
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], join: options.join === true })
  return dataDir
}

export async function startBenchNode (dataDir: string): Promise<BenchNode> {
  const node = await startNode({ dataDir })
  const res = await httpJson(node.url, 'POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD })
  const token = (res as { token: string }).token
  return { node, dataDir, token, headers: { authorization: `Bearer ${token}` } }
}

export class HttpError extends Error {
  readonly status: number
  constructor (status: number, body: string, what: string) {
    super(`${what}: HTTP ${status} ${body.slice(0, 300)}`)
    this.status = status
  }
}

/** One JSON request over real HTTP (fetch, loopback). */
export async function httpJson (base: string, method: string, path: string, body?: unknown, token?: string, timeoutMs = 30_000): Promise<unknown> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const init: RequestInit = { method, headers, signal: AbortSignal.timeout(timeoutMs) }
  if (body !== undefined) init.body = JSON.stringify(body)
  const res = await fetch(base + path, init)
  const text = await res.text()
  if (!res.ok) throw new HttpError(res.status, text, `${method} ${path}`)
  return text === '' ? undefined : JSON.parse(text)
}

/** A node as the HTTP helpers reach it: its API, an admin token, and the multiaddr peers dial. */
export interface Reachable { url: string, token: string, address: string }

/**
 * A full node and one initialised with `join` trust each other (POST /peers
 * both ways); the full node adds the other to the mesh roster as `role`.
 * Resolves once the joined node holds a roster that names it (before that
 * it cannot write, and what it receives waits for the roster).
 */
export async function enrol (full: Reachable, joined: Reachable, options: { role?: 'full' | 'contributor' | 'read-only', names?: [string, string], timeoutMs?: number } = {}): Promise<string> {
  const [fullName, joinedName] = options.names ?? [undefined, undefined]
  await httpJson(joined.url, 'POST', '/peers', { multiaddr: full.address, name: fullName }, joined.token)
  await httpJson(full.url, 'POST', '/peers', { multiaddr: joined.address, name: joinedName, role: options.role ?? 'full' }, full.token)
  return await rosterRole(joined, options.timeoutMs ?? 30_000)
}

/** Waits (bounded) until the node holds a roster naming it, and returns its role there. */
export async function rosterRole (node: { url: string, token: string }, timeoutMs = 30_000): Promise<string> {
  let role = 'unknown'
  await waitUntil(async () => {
    role = String((await httpJson(node.url, 'GET', '/nodes', undefined, node.token) as { selfRole?: string }).selfRole)
    return role !== 'unknown'
  }, timeoutMs, `${node.url} to hold a roster naming it`, 50)
  return role
}

/** The address another node uses to add `node` (loopback, with its peer id). */
export function loopbackAddress (node: RunningNode): string {
  const addr = node.addresses().find(a => a.includes('/ip4/127.0.0.1/'))
  if (addr === undefined) throw new Error('node has no loopback address')
  return addr
}

export function rssBytes (): number { return process.memoryUsage.rss() }

/** Parses `--name value` / `--flag` options shared by the scripts. */
export function intOption (value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value.replace(/[_,]/g, ''))
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer`)
    process.exit(2)
  }
  return n
}

// ---------------------------------------------------------------- waiting for heads

/** [document key, its heads]: what a bench node reports and waits for. */
export type HeadsEntry = [string, string[]]

export function sameHeads (a: string[] | undefined, b: string[]): boolean {
  if (a === undefined || a.length !== b.length) return false
  const set = new Set(a)
  return b.every(h => set.has(h))
}

/**
 * Resolves once every expected key holds exactly the expected heads in
 * `docs` (or `timeoutMs` passes). Change events do the work and set the
 * time; a re-check with `metas` every `pollMs` (a bounded loop) makes the
 * answer independent of catching an event. The re-check runs in the node
 * being measured, so it is rare by default: every 250 ms, every 2 s for
 * many keys. (It was every 5 ms for few keys: ~10% of the receiver's CPU
 * in a round of 100 changes, taken from the sync it was timing.)
 */
export async function waitForHeads (docs: DocStore, expected: HeadsEntry[], timeoutMs: number, pollMs?: number): Promise<{ ms: number, ok: boolean, missing: number }> {
  const t = now()
  const want = new Map(expected)
  const check = async (): Promise<void> => {
    const keys = [...want.keys()]
    for (let i = 0; i < keys.length; i += 10_000) {
      const slice = keys.slice(i, i + 10_000)
      const metas = await docs.metas(slice)
      slice.forEach((key, j) => {
        const h = want.get(key)
        if (h !== undefined && sameHeads(metas[j]?.heads, h)) want.delete(key)
      })
    }
  }
  let wake: (() => void) | undefined
  const onChange = (e: { key: string, meta: { heads: string[] } }): void => {
    const h = want.get(e.key)
    if (h !== undefined && sameHeads(e.meta.heads, h)) {
      want.delete(e.key)
      if (want.size === 0) wake?.()
    }
  }
  // Listen first, then check: a change landing during the check is not missed.
  docs.on('change', onChange)
  try {
    await check()
    const deadline = t + timeoutMs
    const every = pollMs ?? (want.size > 1000 ? 2000 : 250)
    while (want.size > 0 && now() < deadline) {
      await new Promise<void>(resolve => {
        wake = resolve
        setTimeout(resolve, Math.min(every, Math.max(0, deadline - now())))
      })
      wake = undefined
      if (want.size > 0) await check()
    }
    return { ms: now() - t, ok: want.size === 0, missing: want.size }
  } finally {
    docs.off('change', onChange)
  }
}
