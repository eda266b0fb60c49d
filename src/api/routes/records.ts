import type { FastifyInstance } from 'fastify'
import type { RecordKind } from '../../crdt/keys.ts'
import type { FileRef } from '../../crdt/records/versions.ts'
import type { ContentKind, ListQuery, Records } from '../../warehouse/records.ts'
import type { Files } from '../../warehouse/files.ts'
import { DwError } from '../../errors.ts'
import { fileRefProblem } from '../../trust/file-refs.ts'
import { who } from '../auth-hook.ts'
import { description, fileRef, id, idParams, jsonMap, listQuery, name, tags } from '../schemas.ts'
import { checkFileName, checkJsonSize, checkNumbers } from '../validate.ts'

const metrics = { type: 'object', maxProperties: 200, additionalProperties: { type: 'number' } } as const
const metricsPatch = { type: 'object', maxProperties: 200, additionalProperties: { type: ['number', 'null'] } } as const
const framework = { type: 'string', maxLength: 100 } as const
/** Copies of each file the mesh keeps (docs/files.md, "Copies"); null clears the record's own target. */
const copies = { type: ['integer', 'null'], minimum: 1, maximum: 10 } as const

const datasetCreate = { name, description, tags, metadata: jsonMap }
const datasetPatch = { name, description, owner: id, addTags: tags, removeTags: tags, metadata: jsonMap, copies }

/** Create and patch bodies per kind. */
const BODIES: Record<ContentKind, { create: object, patch: object }> = {
  dataset: {
    create: { type: 'object', required: ['name'], additionalProperties: false, properties: datasetCreate },
    patch: { type: 'object', additionalProperties: false, minProperties: 1, properties: datasetPatch }
  },
  model: {
    create: { type: 'object', required: ['name'], additionalProperties: false, properties: { ...datasetCreate, framework, metrics } },
    patch: { type: 'object', additionalProperties: false, minProperties: 1, properties: { ...datasetPatch, framework, metrics: metricsPatch } }
  },
  report: {
    create: {
      type: 'object',
      required: ['reportKind', 'title', 'subject', 'body'],
      additionalProperties: false,
      properties: {
        reportKind: { type: 'string', enum: ['bias', 'transformation', 'xai'] },
        title: name,
        subject: {
          type: 'object',
          required: ['kind', 'id'],
          additionalProperties: false,
          properties: { kind: { type: 'string', enum: ['dataset', 'model'] }, id, versionId: id }
        },
        body: jsonMap,
        files: { type: 'array', maxItems: 100, items: fileRef }
      }
    },
    patch: { type: 'object', additionalProperties: false, minProperties: 1, properties: { title: name, body: jsonMap, copies } }
  }
}

const PLURAL: Record<ContentKind, string> = { dataset: 'datasets', model: 'models', report: 'reports' }

/** Display names by user id: accounts' usernames and other sites' bootstrap admins (`admin@<site>`). */
export type UserNames = () => Promise<Map<string, string>>

/** Adds `<field>Name` beside each user id field that has a known name. */
function named<T extends object> (view: T, names: Map<string, string>, idFields: string[]): T {
  const out = { ...view } as Record<string, unknown>
  for (const field of idFields) {
    const id = out[field]
    const name = typeof id === 'string' ? names.get(id) : undefined
    if (name !== undefined) out[`${field}Name`] = name
  }
  return out as T
}

/**
 * A record view with names beside its user ids: owner, creator, last
 * editor, each version's author and each training entry's `by`.
 */
function withNames<T extends Record<string, unknown>> (view: T, names: Map<string, string>): T {
  const out = named(view, names, ['owner', 'createdBy', 'updatedBy']) as Record<string, unknown>
  if (Array.isArray(view.versions)) out.versions = view.versions.map(v => named(v as object, names, ['author']))
  if (Array.isArray(view.training)) out.training = view.training.map(e => named(e as object, names, ['by']))
  return out as T
}

/** List, create, get, patch, delete and restore for one record kind. */
export function recordRoutes (app: FastifyInstance, records: Records, kind: ContentKind, files: Files, userNames?: UserNames): void {
  const base = `/${PLURAL[kind]}`
  const tag = [PLURAL[kind]]
  const sizes = (body: Record<string, unknown>): void => {
    for (const field of ['metadata', 'body']) checkJsonSize(field, body[field])
    checkNumbers('metrics', body.metrics)
  }
  const shown = async <T extends Record<string, unknown>>(view: T): Promise<T> => userNames === undefined ? view : withNames(view, await userNames())

  app.get(base, { schema: { tags: tag, summary: `List ${PLURAL[kind]} (filter by tag, owner, text in name; page with cursor)`, querystring: listQuery } }, async (request) => {
    const page = await records.list(kind, request.query as ListQuery)
    if (userNames === undefined) return page
    const names = await userNames()
    return { ...page, items: page.items.map(item => named(item, names, ['owner'])) }
  })

  app.post(base, { schema: { tags: tag, summary: `Create a ${kind}`, body: BODIES[kind].create } }, async (request, reply) => {
    const body = request.body as Record<string, any>
    sizes(body)
    if (kind === 'report') {
      await checkSubject(records, body.subject)
      await checkFileRefs(records, files, body.files ?? [])
    }
    return await reply.status(201).send(await shown(await records.create(who(request), kind, body as any)))
  })

  app.get(`${base}/:id`, {
    schema: {
      tags: tag,
      params: idParams,
      querystring: { type: 'object', additionalProperties: false, properties: { includeDeleted: { type: 'boolean' } } }
    }
  }, async (request) => {
    const query = request.query as { includeDeleted?: boolean }
    return await shown(await withPresence(await records.get(kind, (request.params as { id: string }).id, query), files))
  })

  app.patch(`${base}/:id`, { schema: { tags: tag, summary: `Change a ${kind} (owner or admin)`, params: idParams, body: BODIES[kind].patch } }, async (request) => {
    sizes(request.body as Record<string, unknown>)
    return await shown(await records.patch(who(request), kind, (request.params as { id: string }).id, request.body as any))
  })

  app.delete(`${base}/:id`, { schema: { tags: tag, summary: `Delete a ${kind} (a tombstone that replicates)`, params: idParams } }, async (request, reply) => {
    await records.remove(who(request), kind, (request.params as { id: string }).id)
    return await reply.status(204).send()
  })

  app.post(`${base}/:id/restore`, { schema: { tags: tag, summary: `Restore a deleted ${kind}`, params: idParams } }, async (request) =>
    await shown(await records.restore(who(request), kind, (request.params as { id: string }).id)))
}

async function checkSubject (records: Records, subject: { kind: 'dataset' | 'model', id: string, versionId?: string }): Promise<void> {
  const target = await records.get(subject.kind, subject.id).catch((err: unknown) => {
    throw new DwError('INVALID_INPUT', `the report's subject does not exist: ${(err as Error).message}`)
  })
  if (subject.versionId !== undefined && !(target.versions as Array<{ id: string }>).some(v => v.id === subject.versionId)) {
    throw new DwError('INVALID_INPUT', `${subject.kind} ${subject.id} has no version ${subject.versionId}`)
  }
}

/**
 * A report's files must be files its author can read: each sha256 named by
 * a live record (so by one the author can read), with the size that record
 * declares. A hash no readable record names gets the same answer whether
 * or not its bytes are on this node, so the answer tells nothing about
 * them. (Versions need no such check: their bytes come with the upload.)
 */
async function checkFileRefs (records: Records, files: Files, refs: FileRef[]): Promise<void> {
  const names = new Set<string>()
  for (const [i, ref] of refs.entries()) {
    const problem = fileRefProblem(ref)
    if (problem !== undefined) throw new DwError('INVALID_INPUT', `files[${i}]: ${problem}`)
    const name = checkFileName(ref.name)
    ref.name = name
    if (names.has(name)) throw new DwError('INVALID_INPUT', `files[${i}]: two files named ${name}`)
    names.add(name)
    const through = await files.readableThrough(ref.sha256)
    if (through.length === 0) {
      throw new DwError('INVALID_INPUT', `files[${i}]: no file with sha256 ${ref.sha256} that you can read; upload it in a dataset or model version first`)
    }
    const declared = new Set<number>()
    for (const key of through) {
      const slash = key.indexOf('/')
      const s = (await records.meta(key.slice(0, slash) as RecordKind, key.slice(slash + 1)))?.summary
      const at = s?.blobs?.indexOf(ref.sha256) ?? -1
      if (s !== undefined && at >= 0 && s.sizes[at] !== undefined) declared.add(s.sizes[at] as number)
    }
    if (!declared.has(ref.size)) {
      throw new DwError('INVALID_INPUT', `files[${i}]: the file with sha256 ${ref.sha256} has ${[...declared].join(' or ')} bytes, not ${ref.size}`)
    }
  }
}

/**
 * Marks each file of each version (and a report's files) with `present`:
 * whether its bytes are on this node (for an accepted reference: see
 * `Files.present`). Metadata syncs everywhere; bytes may not have arrived
 * yet.
 */
async function withPresence<T extends Record<string, unknown>> (view: T, files: Files): Promise<T> {
  const refs = [
    ...((view.versions as Array<{ files: Array<Record<string, unknown>> }> | undefined) ?? []).flatMap(v => v.files),
    ...((view.files as Array<Record<string, unknown>> | undefined) ?? [])
  ]
  await Promise.all(refs.map(async f => { f.present = await files.present(String(f.sha256)) }))
  return view
}
