/**
 * One benchmark node driven by scripts/bench-sync.ts: either in a child
 * process of its own (`node scripts/bench-agent.ts`, commands over the IPC
 * channel) or in-process (`new Agent()`, same commands as method calls).
 * The driver bounds every command with a timeout; the waits here are bounded too.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import type { DocMeta } from '../src/crdt/doc-store.ts'
import { patchDataset } from '../src/crdt/records/dataset.ts'
import {
  type BenchNode, type HeadsEntry, createDatasetsDirect, initBenchDir, loopbackAddress, now, removeDir, startBenchNode, waitForHeads
} from './bench-util.ts'
import { serveAgent } from './bench-ipc.ts'

export type { HeadsEntry }

export interface NodeInfo { url: string, token: string, peerId: string, address: string, dataDir: string }

export class Agent {
  #n: BenchNode | undefined
  #keys: string[] = []

  get #node (): BenchNode {
    if (this.#n === undefined) throw new Error('agent: no node started')
    return this.#n
  }

  /** Starts a node that founds a mesh, or with `join` one that joins the mesh of its first peer. */
  async start (args: { join?: boolean } = {}): Promise<NodeInfo> {
    const dataDir = await initBenchDir('dw-bench-sync-', { join: args?.join === true })
    this.#n = await startBenchNode(dataDir)
    const { node, token } = this.#n
    return { url: node.url, token, peerId: node.peerId, address: loopbackAddress(node), dataDir }
  }

  /** Creates `count` datasets straight through the DocStore (no HTTP). */
  async createDirect (args: { count: number, concurrency?: number }): Promise<{ ms: number, payloadBytes: number, total: number }> {
    const { node } = this.#node
    const t = now()
    const { keys, payloadBytes } = await createDatasetsDirect(node.docs, node.config.adminUserId, args.count, {
      concurrency: args.concurrency ?? 64,
      offset: this.#keys.length,
      onProgress: done => { process.stderr.write(`  [agent] ${done} created\n`) }
    })
    await node.docs.flush()
    for (const k of keys) this.#keys.push(k)
    return { ms: now() - t, payloadBytes, total: this.#keys.length }
  }

  /** Keys of datasets this agent created, `count` of them evenly spread, starting at `offset`. */
  pick (args: { count: number, offset?: number }): string[] {
    const n = this.#keys.length
    const step = Math.max(1, Math.floor(n / args.count))
    const out: string[] = []
    for (let i = 0; i < args.count && i < n; i++) out.push(this.#keys[((args.offset ?? 0) + i * step) % n] as string)
    return out
  }

  /** Every replicated document's key and heads (local-only documents, such as a node's bootstrap admin, never leave it). */
  async heads (args: { prefix?: string } = {}): Promise<HeadsEntry[]> {
    const out: HeadsEntry[] = []
    for await (const [key, meta] of this.#node.node.docs.scan(args.prefix ?? '')) {
      if ((meta as { local?: boolean }).local !== true) out.push([key, meta.heads])
    }
    return out
  }

  /** Changes each key once (a new name), all at once; returns the new heads. */
  async changeDirect (args: { keys: string[], tag: string }): Promise<{ ms: number, heads: HeadsEntry[] }> {
    const { node } = this.#node
    const t = now()
    const at = new Date().toISOString()
    const events = await Promise.all(args.keys.map(async (key, i) =>
      await node.docs.change(key, doc => { patchDataset(doc, { name: `${args.tag} ${i}` }, { userId: node.config.adminUserId, at }) }, { author: node.config.adminUserId })))
    return { ms: now() - t, heads: events.map(e => [e.key, e.meta.heads]) }
  }

  /** Resolves once every expected key holds exactly the expected heads here (bench-util's waitForHeads). */
  async waitHeads (args: { expected: HeadsEntry[], timeoutMs: number, pollMs?: number }): Promise<{ ms: number, ok: boolean, missing: number }> {
    return await waitForHeads(this.#node.node.docs, args.expected, args.timeoutMs, args.pollMs)
  }

  /** Resolves once `key`'s name (from its stored summary) is `name`; polls every ms and on change events. */
  async waitName (args: { key: string, name: string, timeoutMs: number }): Promise<{ ms: number, ok: boolean }> {
    const { docs } = this.#node.node
    const t = now()
    const seen = (meta: DocMeta | undefined): boolean => (meta?.summary as { name?: string } | undefined)?.name === args.name
    if (seen(await docs.meta(args.key))) return { ms: now() - t, ok: true }
    let done = false
    let wake: (() => void) | undefined
    const onChange = (e: { key: string, meta: DocMeta }): void => {
      if (e.key === args.key && seen(e.meta)) { done = true; wake?.() }
    }
    docs.on('change', onChange)
    try {
      const deadline = t + args.timeoutMs
      while (!done && now() < deadline) {
        await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 1) })
        wake = undefined
        if (!done && seen(await docs.meta(args.key))) done = true
      }
      return { ms: now() - t, ok: done }
    } finally {
      docs.off('change', onChange)
    }
  }

  #profiler: Session | undefined

  /** Starts a V8 CPU profile of this process (what `node --cpu-prof` records, for a chosen span). */
  async profileStart (): Promise<void> {
    if (this.#profiler !== undefined) throw new Error('a profile is already running')
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 500 })
    await session.post('Profiler.start')
    this.#profiler = session
  }

  /** Stops the profile and writes it to `file` (open it in Chrome DevTools or speedscope). */
  async profileStop (args: { file: string }): Promise<void> {
    const session = this.#profiler
    if (session === undefined) throw new Error('no profile running')
    this.#profiler = undefined
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    await writeFile(args.file, JSON.stringify(profile))
  }

  /** CPU time this process has used so far (user + system), in ms: less sensitive to a busy machine than wall time. */
  cpu (): number {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1000
  }

  status (): { seq: number, rss: number, peers: ReturnType<BenchNode['node']['sync']['status']> } {
    const { node } = this.#node
    return { seq: node.docs.seq, rss: process.memoryUsage.rss(), peers: node.sync.status() }
  }

  async stop (): Promise<void> {
    const n = this.#n
    this.#n = undefined
    if (n === undefined) return
    await n.node.stop()
    await removeDir(n.dataDir)
  }
}

// Child-process mode: serve commands from the parent over IPC.
if (process.send !== undefined && process.argv[1] !== undefined && import.meta.filename === process.argv[1]) serveAgent(new Agent())
