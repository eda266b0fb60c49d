import type { AdmitResult, DocMeta, FeedEntry, RemoteDoc, Screening } from '../../crdt/doc-store.ts'

/**
 * What the sync protocol needs of the document store. The peer layer sees
 * the store only through this type (the crdt layer knows nothing of peers).
 */
export interface SyncableStore {
  readonly epoch: string
  readonly seq: number
  feedSince: (since: number, limit: number) => Promise<FeedEntry[]>
  metas: (keys: string[]) => Promise<Array<DocMeta | undefined>>
  savedMany: (keys: string[]) => Promise<Array<{ bytes: Uint8Array, meta: DocMeta | undefined, sigs: Uint8Array } | undefined>>
  changesSince: (key: string, heads: string[]) => Promise<{ bytes: Uint8Array, sigs: Uint8Array } | undefined>
  /** True when the local document already contains every change named by `heads`. */
  hasHeads: (key: string, heads: string[]) => Promise<boolean>
  admitRemote: (items: RemoteDoc[], options?: { peer?: string, screening?: Screening }) => Promise<AdmitResult>
  /** Starts the checks `admitRemote` makes on these items, ahead of it, so they overlap the batch before. */
  screenRemote?: (items: RemoteDoc[]) => Screening
  /** The changes of each document's latest update as stored, where they can be pushed (DocStore.latestChanges). */
  latestChanges?: (keys: string[]) => Promise<Array<{ bytes: Uint8Array, sigs: Uint8Array } | undefined>>
  /** Documents to offer at the start of every session, before the feed (the mesh roster). */
  firstKeys?: () => string[]
  on: (event: 'change', listener: (event: { seq: number }) => void) => unknown
  off: (event: 'change', listener: (event: { seq: number }) => void) => unknown
}

export type { MessageStream } from '../../message-stream.ts'

/**
 * Where the puller keeps how far it has read each peer's feed, and the
 * peer's session that acknowledged it (the peer checks it against its own
 * log before trusting the checkpoint).
 */
export interface Checkpoint { epoch: string, through: number, session?: string }

export interface SessionStats {
  /** Documents this side received and that changed something here. */
  recordsReceived: number
  /** Documents this side sent. */
  recordsSent: number
  bytesIn: number
  bytesOut: number
  /** Changes this side refused (not stored, not relayed). */
  refused: number
  /** Documents this side quarantined (loading them broke a limit). */
  quarantined: number
}

export function emptyStats (): SessionStats {
  return { recordsReceived: 0, recordsSent: 0, bytesIn: 0, bytesOut: 0, refused: 0, quarantined: 0 }
}
