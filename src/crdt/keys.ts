import { v7 as uuidv7, validate as uuidValidate } from 'uuid'
import { DwError } from '../errors.ts'

export const RecordKinds = ['user', 'dataset', 'model', 'report'] as const
export type RecordKind = typeof RecordKinds[number]

/**
 * Every kind of document that replicates: the records, the mesh roster
 * (`mesh/<meshId>`) and each node's own document (`node/<id>`, the files it
 * holds). The one list: the sync wire refuses a key of any other kind
 * (src/peer/sync/messages.ts), so a new kind is added here.
 */
export const ReplicatedKinds = [...RecordKinds, 'mesh', 'node'] as const
export type ReplicatedKind = typeof ReplicatedKinds[number]

/** `<kind>/<id>`: the address of one record document everywhere (store, feed, wire). */
export type DocKey = `${RecordKind}/${string}`

/** UUIDv7: globally unique without coordination, and sorts by creation time. */
export function newId (): string {
  return uuidv7()
}

export function isRecordKind (value: unknown): value is RecordKind {
  return typeof value === 'string' && (RecordKinds as readonly string[]).includes(value)
}

export function isReplicatedKind (value: unknown): value is ReplicatedKind {
  return typeof value === 'string' && (ReplicatedKinds as readonly string[]).includes(value)
}

export function isRecordId (value: unknown): value is string {
  return typeof value === 'string' && uuidValidate(value)
}

export function docKey (kind: RecordKind, id: string): DocKey {
  return `${kind}/${id}`
}

export function parseDocKey (key: string): { kind: RecordKind, id: string } {
  const slash = key.indexOf('/')
  const kind = key.slice(0, slash)
  const id = key.slice(slash + 1)
  if (slash < 0 || !isRecordKind(kind) || !isRecordId(id)) {
    throw new DwError('INVALID_INPUT', `not a record key: ${JSON.stringify(key).slice(0, 80)}`)
  }
  return { kind, id }
}

export function isDocKey (key: unknown): key is DocKey {
  if (typeof key !== 'string') return false
  const slash = key.indexOf('/')
  return slash > 0 && isRecordKind(key.slice(0, slash)) && isRecordId(key.slice(slash + 1))
}
