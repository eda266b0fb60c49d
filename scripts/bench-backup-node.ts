/**
 * One node for scripts/bench-backup.ts, in a child process of its own
 * (`fork`, commands over the IPC channel), so the node that is backed up
 * does not share a thread with the client that reads the backup, the
 * writer, or the other node. It serves one data directory for one
 * lifetime: `stop` stops the node and the process exits; the directory
 * stays (the driver copies, backs up and removes it). Every wait here is
 * bounded; the driver bounds every command as well.
 */
import { type BenchNode, type HeadsEntry, createDatasetsDirect, loopbackAddress, now, startBenchNode, waitForHeads } from './bench-util.ts'
import { serveAgent } from './bench-ipc.ts'

export type { HeadsEntry }

export interface NodeInfo { url: string, token: string, peerId: string, address: string, dataDir: string, pid: number }

/** The replicated kinds test/helpers/mesh.ts `stateOf` compares (local-only documents never leave a node). */
const KINDS = ['user', 'dataset', 'model', 'report', 'mesh']

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

  /** Resolves once every expected key holds exactly the expected heads here (bench-util's waitForHeads). */
  async waitHeads (args: { expected: HeadsEntry[], timeoutMs: number, pollMs?: number }): Promise<{ ms: number, ok: boolean, missing: number }> {
    return await waitForHeads(this.#node.node.docs, args.expected, args.timeoutMs, args.pollMs)
  }

  async stop (): Promise<void> {
    const n = this.#n
    this.#n = undefined
    await n?.node.stop()
  }
}

if (process.send !== undefined) serveAgent(new BackupBenchNode())
