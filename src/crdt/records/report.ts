import { asList, asMap } from '../shape.ts'
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

/** Names already attached to a report, in list order (a peer's list may hold odd entries: skipped). */
export function reportFileNames (doc: any): string[] {
  return asList(doc.files).map(f => asMap(f).name).filter((n): n is string => typeof n === 'string')
}

/**
 * Attachments are appended to the end of `files`, never inserted, changed or
 * removed (the permission rules hold every node to that), so files attached
 * concurrently on two sites are all kept. Names are unique per report; the
 * caller checks that first (see Records.attachReportFiles).
 */
export function appendReportFiles (doc: any, files: FileRef[], actor: Actor): void {
  if (!Array.isArray(doc.files)) doc.files = []
  for (const f of files) doc.files.push({ name: f.name, sha256: f.sha256, size: f.size, mediaType: f.mediaType })
  touch(doc, actor)
}
