import type * as A from '@automerge/automerge'
import { isDeleted, tagsOf } from './records/common.ts'

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
  /** Users only. */
  username?: string
  role?: string
  disabled?: boolean
}

export function summarise (_key: string, doc: A.Doc<any>): Record<string, unknown> {
  const d = doc as any
  const blobs = new Map<string, number>()
  for (const v of Object.values<any>(d.versions ?? {})) for (const f of v.files ?? []) blobs.set(f.sha256, f.size)
  for (const f of d.files ?? []) blobs.set(f.sha256, f.size)
  const hashes = [...blobs.keys()].sort()
  const summary: RecordSummary = {
    kind: d.kind,
    name: String(d.name ?? d.title ?? d.username ?? ''),
    owner: String(d.owner ?? d.id ?? ''),
    tags: tagsOf(d),
    deleted: isDeleted(d),
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    blobs: hashes,
    sizes: hashes.map(h => Number(blobs.get(h)))
  }
  if (d.kind === 'user') {
    summary.username = String(d.username)
    summary.role = String(d.role)
    summary.disabled = Boolean(d.disabled)
  }
  return summary as unknown as Record<string, unknown>
}
