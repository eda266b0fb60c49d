/**
 * One node for scripts/bench-backup.ts, in a child process of its own
 * (`fork`, commands over the IPC channel), so the node that is backed up
 * does not share a thread with the client that reads the backup, the
 * writer, or the other node. It serves one data directory for one
 * lifetime: `stop` stops the node and the process exits; the directory
 * stays (the driver copies, backs up and removes it). Every wait here is
 * bounded; the driver bounds every command as well.
 */
import type { DocMeta } from '../src/crdt/doc-store.ts'
import { type BenchNode, createDatasetsDirect, loopbackAddress, now, startBenchNode } from './bench-util.ts'

export type HeadsEntry = [string, string[]]

export interface NodeInfo { url: string, token: string, peerId: string, address: string, dataDir: string, pid: number }

/** The replicated kinds test/helpers/mesh.ts `stateOf` compares (local-only documents never leave a node). */
const KINDS = ['user', 'dataset', 'model', 'report', 'mesh']

function sameHeads (a: string[] | undefined, b: string[]): boolean {
  if (a === undefined || a.length !== b.length) return false
  const set = new Set(a)
  return b.every(h => set.has(h))
}

class BackupBenchNode {
  #n: BenchNode | undefined

  get #node (): BenchNode {
    if (this.#n === undefined) throw new Error('bench-backup-node: no node started')
    return this.#n
  }

  /** Starts the node in an initialised (or restored) data directory and logs in as admin. */
  async start (args: { dataDir: string }): Promise<NodeInfo> {
    if (this.#n !== undefined) throw new Error('bench-backup-node: a node is running already')
    this.#n = await startBenchNode(args.dataDir)
    const { node, token } = this.#n
    return { url: node.url, token, peerId: node.peerId, address: loopbackAddress(node), dataDir: args.dataDir, pid: process.pid }
  }

  /** Creates `count` datasets straight through the DocStore (no HTTP), then flushes. */
  async createDirect (args: { count: number, offset?: number }): Promise<{ ms: number }> {
    const { node } = this.#node
    const t = now()
    await createDatasetsDirect(node.docs, node.config.adminUserId, args.count, {
      offset: args.offset ?? 0,
      onProgress: done => { process.stderr.write(`  [node] ${done} created\n`) }
    })
    await node.docs.flush()
    return { ms: now() - t }
  }

  /** Every replicated record's key and heads (sorted), as `stateOf` in test/helpers/mesh.ts reads them. */
  async heads (): Promise<HeadsEntry[]> {
    const out: HeadsEntry[] = []
    for (const kind of KINDS) {
      for await (const [key, meta] of this.#node.node.docs.scan(`${kind}/`)) {
        if ((meta as { local?: boolean }).local !== true) out.push([key, [...meta.heads].sort()])
      }
    }
    return out
  }

  /**
   * Resolves once every expected key holds exactly the expected heads here
   * (or `timeoutMs` passes): change events wake it, and a re-check with
   * `metas` every `pollMs` makes the answer independent of catching one.
   */
  async waitHeads (args: { expected: HeadsEntry[], timeoutMs: number, pollMs?: number }): Promise<{ ms: number, ok: boolean, missing: number }> {
    const { docs } = this.#node.node
    const t = now()
    const want = new Map(args.expected)
    const check = async (): Promise<void> => {
      const keys = [...want.keys()]
      for (let i = 0; i < keys.length; i += 5000) {
        const slice = keys.slice(i, i + 5000)
        const metas = await docs.metas(slice)
        slice.forEach((key, j) => {
          const h = want.get(key)
          if (h !== undefined && sameHeads((metas[j] as DocMeta | undefined)?.heads, h)) want.delete(key)
        })
      }
    }
    let wake: (() => void) | undefined
    const onChange = (e: { key: string, meta: DocMeta }): void => {
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
      const deadline = t + args.timeoutMs
      const pollMs = args.pollMs ?? 500
      while (want.size > 0 && now() < deadline) {
        await new Promise<void>(resolve => {
          wake = resolve
          setTimeout(resolve, Math.min(pollMs, Math.max(0, deadline - now())))
        })
        wake = undefined
        if (want.size > 0) await check()
      }
      return { ms: now() - t, ok: want.size === 0, missing: want.size }
    } finally {
      docs.off('change', onChange)
    }
  }

  async stop (): Promise<void> {
    const n = this.#n
    this.#n = undefined
    await n?.node.stop()
  }
}

type Command = { id: number, cmd: string, args: unknown }

if (process.send !== undefined) {
  const agent = new BackupBenchNode() as unknown as Record<string, (args: unknown) => unknown>
  process.on('message', (msg: Command) => {
    void (async () => {
      try {
        const fn = agent[msg.cmd]
        if (typeof fn !== 'function') throw new Error(`unknown command ${msg.cmd}`)
        const result = await fn.call(agent, msg.args)
        process.send?.({ id: msg.id, ok: true, result })
        // One node per process: once it is stopped there is nothing left to do.
        if (msg.cmd === 'stop') setTimeout(() => { process.exit(0) }, 50)
      } catch (err) {
        process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) })
      }
    })()
  })
  process.on('disconnect', () => {
    // The driver went away: stop the node cleanly (the driver removes the directories).
    void (async () => {
      await Promise.resolve(agent.stop?.call(agent, undefined as unknown)).catch(() => {})
      process.exit(0)
    })()
  })
}
