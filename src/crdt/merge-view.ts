import * as A from '@automerge/automerge'
import { isDeleted, tagsOf } from './records/common.ts'
import { orderedVersions } from './records/versions.ts'
import { asMap, asText, fileRefs } from './shape.ts'

/** Stamped on every change, so concurrent edits always "conflict" there; not worth showing. */
const BOOKKEEPING = new Set(['updatedAt', 'updatedBy', 'kind', 'id', 'createdAt', 'createdBy'])

/** Never leaves the node through the API. */
const SECRET = new Set(['passwordHash'])

/**
 * Values of scalar fields that lost a concurrent write. Automerge keeps them
 * until the field is written again; the API shows them so a user can see
 * what the merge chose and change it.
 */
function conflictsOf (doc: A.Doc<any>, path: string[], target: any, into: Record<string, unknown[]>): void {
  for (const field of Object.keys(target)) {
    if (path.length === 0 && (BOOKKEEPING.has(field) || SECRET.has(field))) continue
    let all: Record<string, unknown> | undefined
    try {
      all = A.getConflicts(target, field) as Record<string, unknown> | undefined
    } catch {
      // Not a map field Automerge can report on (a peer sent an odd shape): nothing to show.
      continue
    }
    if (all === undefined) continue
    const values = Object.values(all)
    if (values.length < 2) continue
    const winner = JSON.stringify(toPlain(target[field]))
    const losers = values.map(toPlain).filter(v => JSON.stringify(v) !== winner)
    if (losers.length > 0) into[[...path, field].join('.')] = losers
  }
}

/**
 * A plain JSON copy with object keys sorted: Automerge may materialise a
 * map's keys in a different order on different nodes, and the same record
 * should read byte-for-byte the same everywhere.
 */
function toPlain (value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value
  // Automerge reads 64-bit integers from peers as BigInt, which JSON cannot carry.
  const json = JSON.stringify(value, (_key, v: unknown) => typeof v === 'bigint' ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v)
  return JSON.parse(json, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  })
}

export type RecordView = Record<string, unknown> & { conflicts: Record<string, unknown[]> }

/** The API's JSON view of a record document. */
export function recordView (doc: A.Doc<any>): RecordView {
  const d = doc as any
  const plain = toPlain(d) as Record<string, any>
  const conflicts: Record<string, unknown[]> = {}
  conflictsOf(doc, [], d, conflicts)
  if (d.metadata !== null && typeof d.metadata === 'object' && !Array.isArray(d.metadata)) conflictsOf(doc, ['metadata'], d.metadata, conflicts)
  for (const secret of SECRET) delete plain[secret]
  delete plain.deletions
  const view: RecordView = { ...plain, deleted: isDeleted(d), conflicts }
  if (d.tags !== undefined) view.tags = tagsOf(d)
  if (d.versions !== undefined) view.versions = orderedVersions(plain.versions)
  if (d.training !== undefined) {
    view.training = Object.values(asMap(plain.training)).filter(e => typeof asMap(e).id === 'string').map(asMap)
      .sort((a, b) => asText(a.at) < asText(b.at) ? -1 : asText(a.at) > asText(b.at) ? 1 : asText(a.id) < asText(b.id) ? -1 : 1)
  }
  if (d.files !== undefined) view.files = fileRefs(plain.files)
  return view
}
