import { createHash } from 'node:crypto'
import type * as A from '@automerge/automerge'
import { isDeleted, tagsOf } from './records/common.ts'
import { asMap, asText, fileRefs } from './shape.ts'
import { isCopyCount } from './records/common.ts'

/**
 * The small, JSON-only description of a record kept beside its document:
 * list endpoints filter and page on it, and the user index and garbage
 * collection read it, without loading any Automerge document.
 */
export interface RecordSummary {
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

export function summarise (_key: string, doc: A.Doc<any>): Record<string, unknown> {
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
  return summary as unknown as Record<string, unknown>
}
