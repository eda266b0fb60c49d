import type { DocChangeEvent, DocStore, DocMeta } from '../crdt/doc-store.ts'
import { docKey, newId, type RecordKind } from '../crdt/keys.ts'
import { recordView, type RecordView } from '../crdt/merge-view.ts'
import { isDeleted, markDeleted, restore } from '../crdt/records/common.ts'
import { initDataset, patchDataset, type DatasetInput, type DatasetPatch } from '../crdt/records/dataset.ts'
import { addTrainingEntry, initModel, patchModel, type ModelInput, type ModelPatch, type TrainingEntry } from '../crdt/records/model.ts'
import { appendReportFiles, initReport, patchReport, reportFileNames, type ReportInput, type ReportPatch } from '../crdt/records/report.ts'
import { addVersion, type FileRef, type Version } from '../crdt/records/versions.ts'
import type { RecordSummary } from '../crdt/summary.ts'
import { DwError } from '../errors.ts'
import { asMap } from '../crdt/shape.ts'
import { actorOf, requireOwnerOrAdmin, type Principal } from './principal.ts'

export type ContentKind = 'dataset' | 'model' | 'report'

export interface ListQuery {
  tag?: string
  owner?: string
  /** Case-insensitive substring of the name (or report title). */
  q?: string
  includeDeleted?: boolean
  limit: number
  /** The id after which to continue (the previous page's `next`). */
  cursor?: string
}

export interface ListPage {
  items: Array<RecordSummary & { id: string }>
  next: string | undefined
  /** How many records match the query on every page together (the cursor and limit aside). */
  total: number
}

/**
 * Datasets, models and reports: the operations the API offers, with the
 * permission rules, on top of the document store.
 */
export class Records {
  readonly #docs: DocStore<RecordSummary>

  constructor (docs: DocStore<RecordSummary>) {
    this.#docs = docs
  }

  async create (who: Principal, kind: ContentKind, input: DatasetInput | ModelInput | ReportInput): Promise<RecordView> {
    const id = newId()
    const actor = actorOf(who)
    const created = await this.#docs.create(docKey(kind, id), doc => {
      if (kind === 'dataset') initDataset(doc, 'dataset', id, input as DatasetInput, actor)
      else if (kind === 'model') initModel(doc, id, input as ModelInput, actor)
      else initReport(doc, id, input as ReportInput, actor)
    }, { author: who.userId })
    return await this.#viewAfter(kind, id, created)
  }

  async get (kind: ContentKind, id: string, options: { includeDeleted?: boolean } = {}): Promise<RecordView> {
    const view = await this.#docs.read(docKey(kind, id), doc => doc === undefined ? undefined : recordView(doc))
    if (view === undefined) throw new DwError('NOT_FOUND', `${kind} ${id} not found`)
    if (view.deleted === true && options.includeDeleted !== true) {
      throw new DwError('RECORD_DELETED', `${kind} ${id} was deleted; an admin or its owner can restore it`)
    }
    return view
  }

  async patch (who: Principal, kind: ContentKind, id: string, patch: DatasetPatch | ModelPatch | ReportPatch): Promise<RecordView> {
    const actor = actorOf(who)
    const changed = await this.#change(kind, id, doc => {
      requireOwnerOrAdmin(who, doc.owner, kind)
      if ((patch as DatasetPatch).owner !== undefined && who.role !== 'admin') {
        throw new DwError('FORBIDDEN', 'only an admin can change the owner')
      }
      if (kind === 'dataset') patchDataset(doc, patch as DatasetPatch, actor)
      else if (kind === 'model') patchModel(doc, patch as ModelPatch, actor)
      else patchReport(doc, patch as ReportPatch, actor)
    }, { author: who.userId })
    return await this.#viewAfter(kind, id, changed)
  }

  async remove (who: Principal, kind: ContentKind, id: string): Promise<void> {
    await this.#change(kind, id, doc => {
      requireOwnerOrAdmin(who, doc.owner, kind)
      markDeleted(doc, actorOf(who))
    }, { author: who.userId })
  }

  async restore (who: Principal, kind: ContentKind, id: string): Promise<RecordView> {
    const restored = await this.#change(kind, id, doc => {
      requireOwnerOrAdmin(who, doc.owner, kind)
      restore(doc, actorOf(who))
    }, { allowDeleted: true, author: who.userId })
    return await this.#viewAfter(kind, id, restored)
  }

  async addVersion (who: Principal, kind: 'dataset' | 'model', id: string, files: FileRef[], note: string): Promise<Version> {
    let version: Version | undefined
    await this.#change(kind, id, doc => {
      requireOwnerOrAdmin(who, doc.owner, kind)
      version = addVersion(doc, files, note, actorOf(who))
    }, { author: who.userId })
    return version as Version
  }

  /**
   * Appends uploaded files to a report. A name the report already has is
   * refused (CONFLICT) and nothing is appended: a report's file is named by
   * its name in download URLs, so a second one would be unreachable.
   */
  async attachReportFiles (who: Principal, id: string, files: FileRef[]): Promise<FileRef[]> {
    await this.#change('report', id, doc => {
      requireOwnerOrAdmin(who, doc.owner, 'report')
      const taken = new Set(reportFileNames(doc))
      const clash = files.filter(f => taken.has(f.name)).map(f => f.name)
      if (clash.length > 0) {
        throw new DwError('CONFLICT', `report ${id} already has a file named ${clash.join(', ')}; a report holds each name once (upload it under another name)`)
      }
      appendReportFiles(doc, files, actorOf(who))
    }, { author: who.userId })
    return files
  }

  async addTrainingEntry (who: Principal, id: string, entry: Omit<TrainingEntry, 'id' | 'at' | 'by'>): Promise<TrainingEntry> {
    let added: TrainingEntry | undefined
    await this.#change('model', id, doc => {
      requireOwnerOrAdmin(who, doc.owner, 'model')
      if (entry.versionId !== undefined && asMap(doc.versions)[entry.versionId] === undefined) {
        throw new DwError('INVALID_INPUT', `model ${id} has no version ${entry.versionId}`)
      }
      added = addTrainingEntry(doc, entry, actorOf(who))
    }, { author: who.userId })
    return added as TrainingEntry
  }

  /**
   * Pages through summaries in id order (UUIDv7: creation order) without
   * loading documents. The total counts every match, so the scan reads all
   * summaries of the kind (meta only, never a document) on every page.
   */
  async list (kind: ContentKind, query: ListQuery): Promise<ListPage> {
    const items: ListPage['items'] = []
    const prefix = `${kind}/`
    const after = query.cursor !== undefined ? prefix + query.cursor : undefined
    const q = query.q?.toLowerCase()
    let total = 0
    let next: string | undefined
    for await (const [key, meta] of this.#docs.scan(prefix)) {
      const s = meta.summary
      if (s.deleted && query.includeDeleted !== true) continue
      if (query.tag !== undefined && !s.tags.includes(query.tag)) continue
      if (query.owner !== undefined && s.owner !== query.owner) continue
      if (q !== undefined && !s.name.toLowerCase().includes(q)) continue
      total += 1
      if (after !== undefined && key <= after) continue
      if (items.length === query.limit) next ??= items.at(-1)?.id
      else items.push({ id: key.slice(prefix.length), ...s })
    }
    return { items, next, total }
  }

  async meta (kind: RecordKind, id: string): Promise<DocMeta<RecordSummary> | undefined> {
    return await this.#docs.meta(docKey(kind, id))
  }

  /**
   * The record as its change left it. Read again afterwards, a delete or a
   * peer's edit landing in between would answer a committed write with an
   * error (the partition simulation saw a PATCH answered "deleted" after it
   * was stored), or with a state the write did not make.
   */
  async #viewAfter (kind: ContentKind, id: string, event: DocChangeEvent<RecordSummary>): Promise<RecordView> {
    const view = await this.#docs.readAt(docKey(kind, id), event.meta.heads, doc => doc === undefined ? undefined : recordView(doc))
    if (view === undefined) throw new DwError('NOT_FOUND', `${kind} ${id} not found`)
    return view
  }

  async #change (kind: ContentKind, id: string, fn: (doc: any) => void, options: { allowDeleted?: boolean, author: string }): Promise<DocChangeEvent<RecordSummary>> {
    const key = docKey(kind, id)
    return await this.#docs.change(key, doc => {
      if (isDeleted(doc) && options.allowDeleted !== true) {
        throw new DwError('RECORD_DELETED', `${kind} ${id} was deleted; restore it first`)
      }
      fn(doc)
    }, { author: options.author })
  }
}
