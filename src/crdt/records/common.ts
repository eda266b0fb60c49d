import { randomInt } from 'node:crypto'
import * as A from '@automerge/automerge'
import { newId } from '../keys.ts'
import { asMap } from '../shape.ts'

/** Who and when, stamped on every change by the caller (the API). */
export interface Actor { userId: string, at: string }

/** Fields every record document carries. */
export interface RecordBase {
  kind: string
  id: string
  createdAt: string
  createdBy: string
  updatedAt: string
  updatedBy: string
  /**
   * The tombstone, as a set of delete events. A restore removes only the
   * events it has seen, so a delete concurrent with a restore survives it:
   * deleted anywhere means deleted everywhere until explicitly restored.
   */
  deletions: Record<string, { at: string, by: string }>
}

export function initBase (doc: any, kind: string, id: string, actor: Actor): void {
  doc.kind = kind
  doc.id = id
  doc.createdAt = actor.at
  doc.createdBy = actor.userId
  doc.updatedAt = actor.at
  doc.updatedBy = actor.userId
  doc.deletions = {}
}

/**
 * Makes `doc[field]` a map if a peer's document has something else there
 * (null, a list, a string), so an edit can proceed instead of failing with
 * an Automerge error; the odd value is replaced, as any write would.
 */
export function ensureMap (doc: any, field: string): any {
  const value = doc[field]
  if (value === null || typeof value !== 'object' || Array.isArray(value)) doc[field] = {}
  return doc[field]
}

/**
 * Stamps when and by whom a record changed. `updatedBy` is written only
 * when it changes: Automerge writes a string as a new text object, an
 * operation a character, even when it equals the one there (it skips only
 * equal numbers, booleans and nulls). Every edit by the same user added 37
 * operations that each later load of the record paid for, half of an
 * edit's growth: 30 renames took a dataset from 550 to 2,834 operations
 * and its load from ~0.65 to ~2.3 ms. Documents written either way read
 * the same everywhere, and the rule that `updatedBy` names the change's
 * author (src/trust/rules.ts) holds: unwritten, it already does.
 */
export function touch (doc: any, actor: Actor): void {
  doc.updatedAt = actor.at
  if (doc.updatedBy !== actor.userId) doc.updatedBy = actor.userId
}

export function isDeleted (doc: { deletions?: unknown }): boolean {
  return Object.keys(asMap(doc.deletions)).length > 0
}

export function markDeleted (doc: any, actor: Actor): void {
  ensureMap(doc, 'deletions')[newId()] = { at: actor.at, by: actor.userId }
  touch(doc, actor)
}

export function restore (doc: any, actor: Actor): void {
  const deletions = ensureMap(doc, 'deletions')
  for (const id of Object.keys(deletions)) delete deletions[id]
  touch(doc, actor)
}

/**
 * Tags are a map used as a set. Adding always writes a fresh value (Automerge
 * skips writing a value equal to the current one) so a concurrent remove,
 * which deletes only what it saw, cannot undo the add: add wins.
 *
 * The value is a random 48-bit integer: one operation of 7 bytes. It was a
 * random UUID, which Automerge stores as text, a character at a time, 36
 * operations that no compressor can shrink; that was about a sixth of a
 * dataset's bytes in a sync. Only the keys are ever read, so documents
 * written either way read the same everywhere.
 */
export function addTags (doc: any, tags: string[]): void {
  if (tags.length === 0) return
  const map = ensureMap(doc, 'tags')
  for (const tag of tags) map[tag] = randomInt(0, 2 ** 48 - 1)
}

export function removeTags (doc: any, tags: string[]): void {
  if (tags.length === 0) return
  const map = ensureMap(doc, 'tags')
  for (const tag of tags) delete map[tag]
}

export function tagsOf (doc: { tags?: unknown }): string[] {
  return Object.keys(asMap(doc.tags)).sort()
}

/** Sets description as a text diff, so concurrent edits interleave instead of one replacing the other. */
export function setText (doc: any, field: string, value: string): void {
  if (typeof doc[field] === 'string') A.updateText(doc, [field], value)
  else doc[field] = value
}

/**
 * JSON maps (custom metadata, preferences, metrics, report bodies) are
 * patched key by key, null removing a key, so edits of different keys merge.
 */
export function patchMap (map: any, patch: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete map[k]
    else map[k] = structuredClone(v)
  }
}

/** Copies of each file the mesh keeps unless the roster, a tag or the record asks for more (docs/files.md, "Copies"). */
export const DEFAULT_COPIES = 2
export const MIN_COPIES = 1
export const MAX_COPIES = 10

/** A copy target: a whole number from MIN_COPIES to MAX_COPIES. */
export function isCopyCount (v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= MIN_COPIES && v <= MAX_COPIES
}

/** Sets a record's own copy target, or with null clears it (the mesh's and tags' targets apply). */
export function setRecordCopies (doc: any, copies: number | null): void {
  if (copies === null) {
    if (doc.copies !== undefined) delete doc.copies
  } else if (doc.copies !== copies) {
    doc.copies = copies
  }
}
