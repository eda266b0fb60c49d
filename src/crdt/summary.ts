import { createHash } from 'node:crypto'
import type * as A from '@automerge/automerge'
import { isDeleted, tagsOf } from './records/common.ts'
import { asMap, asText, fileRefs } from './shape.ts'
import { isCopyCount } from './records/common.ts'

/**
 * The small, JSON-only description of a record kept beside its document:
 * list endpoints filter and page on it, and the user index and garbage
 * collection read it, without loading any Automerge document.
 *
 * Every replicated document gets one, records or not. The roster and the
 * node documents (`mesh/…`, `node/…`) are not records: theirs names their
 * kind and leaves the record fields empty (no name, no tags, no blobs), and
 * so does the summary of a document whose shape defeats the summariser
 * (see `summarise`). Readers that want records check `kind`.
 */
export interface RecordSummary {
  /** What the document says it is (a RecordKind for a record, 'mesh' or 'node'); for a document whose shape defeats the summariser, the kind its key names. */
  kind: string
  name: string
  owner: string
  tags: string[]
  deleted: boolean
  createdAt: string
  updatedAt: string
  /** sha256 of every file the record references (versions, report files), sorted. */
  blobs: string[]
  /** Size in bytes of each blob in `blobs`, same order. */
  sizes: number[]
  /** Datasets, models and reports: copies of each file the record asks the mesh to keep (1..10), when set. */
  copies?: number
  /** Users only. */
  username?: string
  role?: string
  disabled?: boolean
  /** Users only: a fingerprint of the password hash, so a change to it is seen without loading the account. */
  pw?: string
}

/**
 * The document store's summariser (DocStoreOptions.summarise). It never
 * throws: documents arrive from peers in any shape, and one that defeats
 * it is still stored, with an empty summary of the kind its key names.
 */
export function summarise (key: string, doc: A.Doc<any>): RecordSummary {
  try {
    return recordSummary(doc)
  } catch {
    return emptySummary(key)
  }
}

/** The summary of a document with nothing a record's summary reads. */
function emptySummary (key: string): RecordSummary {
  return { kind: key.slice(0, key.indexOf('/')), name: '', owner: '', tags: [], deleted: false, createdAt: '', updatedAt: '', blobs: [], sizes: [] }
}

function recordSummary (doc: A.Doc<any>): RecordSummary {
  const d = doc as any
  const blobs = new Map<string, number>()
  for (const v of Object.values(asMap(d.versions))) for (const f of fileRefs(asMap(v).files)) blobs.set(f.sha256, f.size)
  for (const f of fileRefs(d.files)) blobs.set(f.sha256, f.size)
  const hashes = [...blobs.keys()].sort()
  const summary: RecordSummary = {
    kind: asText(d.kind),
    name: asText(d.name ?? d.title ?? d.username),
    owner: asText(d.owner ?? d.id),
    tags: tagsOf(d),
    deleted: isDeleted(d),
    createdAt: asText(d.createdAt),
    updatedAt: asText(d.updatedAt),
    blobs: hashes,
    sizes: hashes.map(h => Number(blobs.get(h)))
  }
  if (isCopyCount(d.copies)) summary.copies = d.copies
  if (d.kind === 'user') {
    summary.username = asText(d.username)
    summary.role = asText(d.role)
    summary.disabled = Boolean(d.disabled)
    summary.pw = createHash('sha256').update(asText(d.passwordHash)).digest('hex').slice(0, 16)
  }
  return summary
}
