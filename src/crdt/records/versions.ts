import { newId } from '../keys.ts'
import { asMap, asText, fileRefs } from '../shape.ts'
import { ensureMap, touch, type Actor } from './common.ts'

export interface FileRef { name: string, sha256: string, size: number, mediaType: string }

/** An immutable snapshot of a dataset's or model's files. */
export interface Version {
  id: string
  files: FileRef[]
  note: string
  author: string
  createdAt: string
}

/**
 * Versions live in a map keyed by their UUIDv7, so versions created
 * concurrently on two nodes are both kept; nobody ever renumbers them.
 */
export function addVersion (doc: any, files: FileRef[], note: string, actor: Actor): Version {
  const version: Version = { id: newId(), files: files.map(f => ({ ...f })), note, author: actor.userId, createdAt: actor.at }
  ensureMap(doc, 'versions')[version.id] = version
  touch(doc, actor)
  return version
}

/** Display order: time, then id. The same on every node. */
export function orderedVersions (versions: unknown): Version[] {
  const valid = Object.values(asMap(versions))
    .filter(v => typeof asMap(v).id === 'string')
    .map(v => ({ ...asMap(v), files: fileRefs(asMap(v).files), createdAt: asText(asMap(v).createdAt) }) as unknown as Version)
  return valid.sort((a, b) =>
    a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}
