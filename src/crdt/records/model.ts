import { newId } from '../keys.ts'
import { ensureMap, patchMap, touch, type Actor } from './common.ts'
import { initDataset, patchDataset, type DatasetInput, type DatasetPatch } from './dataset.ts'

export interface ModelInput extends DatasetInput {
  framework?: string
  metrics?: Record<string, number>
}

export interface ModelPatch extends DatasetPatch {
  framework?: string
  /** Per metric; null removes one. */
  metrics?: Record<string, number | null>
}

export interface TrainingEntry {
  id: string
  at: string
  by: string
  note: string
  versionId?: string
  params: Record<string, unknown>
  metrics: Record<string, number>
}

export function initModel (doc: any, id: string, input: ModelInput, actor: Actor): void {
  initDataset(doc, 'model', id, input, actor)
  doc.framework = input.framework ?? ''
  doc.metrics = { ...(input.metrics ?? {}) }
  doc.training = {}
}

export function patchModel (doc: any, patch: ModelPatch, actor: Actor): void {
  patchDataset(doc, patch, actor)
  if (patch.framework !== undefined && patch.framework !== doc.framework) doc.framework = patch.framework
  if (patch.metrics !== undefined) patchMap(ensureMap(doc, 'metrics'), patch.metrics)
}

/** Training history is append-only, keyed by id, so entries from two nodes are both kept. */
export function addTrainingEntry (doc: any, entry: Omit<TrainingEntry, 'id' | 'at' | 'by'>, actor: Actor): TrainingEntry {
  const full: TrainingEntry = { id: newId(), at: actor.at, by: actor.userId, ...structuredClone(entry) }
  if (full.versionId === undefined) delete full.versionId
  ensureMap(doc, 'training')[full.id] = full
  touch(doc, actor)
  return full
}
