import { statfs } from 'node:fs/promises'
import { Counter, Gauge, type Registry } from 'prom-client'
import { ReplicatedKinds } from '../crdt/keys.ts'
import type { Readiness } from '../start/readiness.ts'
import { cached } from './cached.ts'

/** What the node-wide series are read from, at each scrape. */
export interface NodeSource {
  /** This node's name and peer id, for `dw_node_info`. */
  self: { name: string, peerId: string }
  /** The data directory: its filesystem's free space is what a full disk is judged by. */
  dataDir: string
  readiness: () => Promise<Readiness>
  /** Metas of the documents whose key starts with a prefix (DocStore.scan). */
  scan: (prefix: string) => AsyncIterable<[string, { summary: { deleted?: boolean } }]>
  /** The latest position in this node's changes feed. */
  feedHead: () => number
  parkedChanges: () => number
  quarantined: () => Promise<number>
  /** Every stored blob (BlobStore.list). */
  blobs: () => AsyncIterable<{ size: number }>
  transfers: () => Array<{ queued?: true }>
  /** Files wanted here that no usable peer has yet. */
  waiting: () => number
  bytesServed: () => number
  belowCopyTarget: () => number
}

/**
 * Counting documents reads every meta (around a second per 100,000
 * documents); counting blobs lists the store, which with S3 costs a request
 * per 1,000 objects. Both change slowly, so they are counted at most this
 * often whatever the scrape interval.
 */
export const DOCUMENT_COUNT_MAX_AGE_MS = 60_000
export const BLOB_COUNT_MAX_AGE_MS = 300_000

/** A gauge read at scrape time; a failed read leaves it without samples rather than failing the scrape. */
function gauge<L extends string> (registry: Registry, name: string, help: string, labelNames: L[], read: (set: (labels: Partial<Record<L, string>>, value: number) => void) => Promise<void> | void): void {
  new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect () {
      this.reset()
      try {
        await read((labels, value) => { this.set(labels, value) })
      } catch {
        this.reset()
      }
    }
  })
}

async function countDocuments (scan: NodeSource['scan']): Promise<Array<{ kind: string, state: string, n: number }>> {
  const out = []
  for (const kind of ReplicatedKinds) {
    let live = 0
    let deleted = 0
    for await (const [, meta] of scan(`${kind}/`)) {
      if (meta.summary.deleted === true) deleted++
      else live++
    }
    out.push({ kind, state: 'live', n: live }, { kind, state: 'deleted', n: deleted })
  }
  return out
}

async function countBlobs (list: NodeSource['blobs']): Promise<{ n: number, bytes: number }> {
  let n = 0
  let bytes = 0
  for await (const blob of list()) { n++; bytes += blob.size }
  return { n, bytes }
}

/** Node-wide series: identity, readiness, disk, store sizes, file transfers. */
export function registerNodeGauges (registry: Registry, source: NodeSource): void {
  const readiness = cached(source.readiness, 1000)
  const disk = cached(async () => await statfs(source.dataDir), 1000)
  const documents = cached(async () => await countDocuments(source.scan), DOCUMENT_COUNT_MAX_AGE_MS)
  const blobs = cached(async () => await countBlobs(source.blobs), BLOB_COUNT_MAX_AGE_MS)

  gauge(registry, 'dw_node_info', 'This node (value 1): its name and peer id.', ['name', 'peer'],
    set => { set({ name: source.self.name, peer: source.self.peerId }, 1) })
  gauge(registry, 'dw_ready', 'Whether the node is ready (1) or not (0), as GET /readyz says.', [],
    async set => { set({}, (await readiness()).ready ? 1 : 0) })
  gauge(registry, 'dw_ready_check', 'Each readiness check: store (reads back what it writes), engine (Automerge works), disk (room for writes); 1 ok, 0 failing.', ['check'],
    async set => { for (const [check, state] of Object.entries((await readiness()).checks)) set({ check }, state === 'ok' ? 1 : 0) })
  gauge(registry, 'dw_disk_free_bytes', 'Bytes free to this node on the filesystem holding its data directory.', [],
    async set => { const fs = await disk(); set({}, fs.bavail * fs.bsize) })
  gauge(registry, 'dw_disk_size_bytes', 'Size of the filesystem holding the data directory.', [],
    async set => { const fs = await disk(); set({}, fs.blocks * fs.bsize) })
  gauge(registry, 'dw_documents', `Documents in the store by kind and state (live, deleted: a tombstone); counted at most every ${DOCUMENT_COUNT_MAX_AGE_MS / 1000} s.`, ['kind', 'state'],
    async set => { for (const { kind, state, n } of await documents()) set({ kind, state }, n) })
  gauge(registry, 'dw_blobs', `Files (blobs) in the blob store; counted at most every ${BLOB_COUNT_MAX_AGE_MS / 1000} s.`, [],
    async set => { set({}, (await blobs()).n) })
  gauge(registry, 'dw_blob_bytes', `Bytes of the files in the blob store; counted at most every ${BLOB_COUNT_MAX_AGE_MS / 1000} s.`, [],
    async set => { set({}, (await blobs()).bytes) })
  gauge(registry, 'dw_feed_head', 'The latest position in this node\'s changes feed.', [],
    set => { set({}, source.feedHead()) })
  gauge(registry, 'dw_parked_changes', 'Changes from peers waiting for a state they reference.', [],
    set => { set({}, source.parkedChanges()) })
  gauge(registry, 'dw_quarantined_documents', 'Documents from peers kept out because loading them broke a limit.', [],
    async set => { set({}, await source.quarantined()) })
  gauge(registry, 'dw_file_transfers', 'Files being fetched from peers: state="running", or "queued" for a transfer slot.', ['state'],
    set => {
      const all = source.transfers()
      const queued = all.filter(t => t.queued === true).length
      set({ state: 'running' }, all.length - queued)
      set({ state: 'queued' }, queued)
    })
  gauge(registry, 'dw_files_waiting', 'Files wanted here (pinned, asked for) that no usable peer has yet.', [],
    set => { set({}, source.waiting()) })
  gauge(registry, 'dw_files_below_copy_target', 'Files of live records held by fewer sites than their copy target, at the last copy pass.', [],
    set => { set({}, source.belowCopyTarget()) })
  new Counter({
    name: 'dw_file_bytes_served_total',
    help: 'File bytes sent to peers since this node started.',
    registers: [registry],
    collect () { this.reset(); this.inc(source.bytesServed()) }
  })
}
