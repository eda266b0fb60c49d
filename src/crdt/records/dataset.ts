import { addTags, initBase, patchMap, removeTags, ensureMap, setRecordCopies, setText, touch, type Actor } from './common.ts'

export interface DatasetInput {
  name: string
  description?: string
  tags?: string[]
  metadata?: Record<string, unknown>
}

export interface DatasetPatch {
  name?: string
  description?: string
  owner?: string
  addTags?: string[]
  removeTags?: string[]
  metadata?: Record<string, unknown>
  /** Copies of each file the mesh keeps (1..10); null clears it. */
  copies?: number | null
}

/** Initialises a dataset document; `kind` lets models reuse it. */
export function initDataset (doc: any, kind: 'dataset' | 'model', id: string, input: DatasetInput, actor: Actor): void {
  initBase(doc, kind, id, actor)
  doc.name = input.name
  doc.description = input.description ?? ''
  doc.owner = actor.userId
  doc.tags = {}
  addTags(doc, input.tags ?? [])
  doc.metadata = {}
  patchMap(doc.metadata, input.metadata ?? {})
  doc.versions = {}
}

/** Applies a patch; only the fields named change, so edits of other fields on other nodes survive. */
export function patchDataset (doc: any, patch: DatasetPatch, actor: Actor): void {
  if (patch.name !== undefined && patch.name !== doc.name) doc.name = patch.name
  if (patch.description !== undefined) setText(doc, 'description', patch.description)
  if (patch.owner !== undefined && patch.owner !== doc.owner) doc.owner = patch.owner
  if (patch.addTags !== undefined) addTags(doc, patch.addTags)
  if (patch.removeTags !== undefined) removeTags(doc, patch.removeTags)
  if (patch.metadata !== undefined) patchMap(ensureMap(doc, 'metadata'), patch.metadata)
  if (patch.copies !== undefined) setRecordCopies(doc, patch.copies)
  touch(doc, actor)
}
