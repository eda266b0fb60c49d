import { ensureMap, initBase, patchMap, setRecordCopies, touch, type Actor } from './common.ts'
import type { FileRef } from './versions.ts'

export const ReportKinds = ['bias', 'transformation', 'xai'] as const
export type ReportKind = typeof ReportKinds[number]

export interface ReportInput {
  reportKind: ReportKind
  title: string
  subject: { kind: 'dataset' | 'model', id: string, versionId?: string }
  body: Record<string, unknown>
  files?: FileRef[]
}

export interface ReportPatch {
  title?: string
  /** Per top-level key; null removes one. */
  body?: Record<string, unknown>
  /** Copies of each file the mesh keeps (1..10); null clears it. */
  copies?: number | null
}

export function initReport (doc: any, id: string, input: ReportInput, actor: Actor): void {
  initBase(doc, 'report', id, actor)
  doc.reportKind = input.reportKind
  doc.title = input.title
  doc.owner = actor.userId
  doc.subject = { ...input.subject }
  doc.body = structuredClone(input.body)
  doc.files = (input.files ?? []).map(f => ({ ...f }))
}

export function patchReport (doc: any, patch: ReportPatch, actor: Actor): void {
  if (patch.title !== undefined && patch.title !== doc.title) doc.title = patch.title
  if (patch.body !== undefined) patchMap(ensureMap(doc, 'body'), patch.body)
  if (patch.copies !== undefined) setRecordCopies(doc, patch.copies)
  touch(doc, actor)
}
