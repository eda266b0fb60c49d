import type { FastifyInstance } from 'fastify'
import type { BlobStore } from '../../blobs/blob-store.ts'
import type { ContentKind, ListQuery, Records } from '../../warehouse/records.ts'
import { DwError } from '../../errors.ts'
import { who } from '../auth-hook.ts'
import { description, fileRef, id, idParams, jsonMap, listQuery, name, tags } from '../schemas.ts'
import { checkJsonSize, checkNumbers } from '../validate.ts'

const metrics = { type: 'object', maxProperties: 200, additionalProperties: { type: 'number' } } as const
const metricsPatch = { type: 'object', maxProperties: 200, additionalProperties: { type: ['number', 'null'] } } as const
const framework = { type: 'string', maxLength: 100 } as const

const datasetCreate = { name, description, tags, metadata: jsonMap }
const datasetPatch = { name, description, owner: id, addTags: tags, removeTags: tags, metadata: jsonMap }

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
    patch: { type: 'object', additionalProperties: false, minProperties: 1, properties: { title: name, body: jsonMap } }
  }
}

const PLURAL: Record<ContentKind, string> = { dataset: 'datasets', model: 'models', report: 'reports' }

/** List, create, get, patch, delete and restore for one record kind. */
export function recordRoutes (app: FastifyInstance, records: Records, kind: ContentKind, blobs: BlobStore): void {
  const base = `/${PLURAL[kind]}`
  const tag = [PLURAL[kind]]
  const sizes = (body: Record<string, unknown>): void => {
    for (const field of ['metadata', 'body']) checkJsonSize(field, body[field])
    checkNumbers('metrics', body.metrics)
  }

  app.get(base, { schema: { tags: tag, summary: `List ${PLURAL[kind]} (filter by tag, owner, text in name; page with cursor)`, querystring: listQuery } }, async (request) =>
    await records.list(kind, request.query as ListQuery))

  app.post(base, { schema: { tags: tag, summary: `Create a ${kind}`, body: BODIES[kind].create } }, async (request, reply) => {
    const body = request.body as Record<string, any>
    sizes(body)
    if (kind === 'report') await checkSubject(records, body.subject)
    return await reply.status(201).send(await records.create(who(request), kind, body as any))
  })

  app.get(`${base}/:id`, {
    schema: {
      tags: tag,
      params: idParams,
      querystring: { type: 'object', additionalProperties: false, properties: { includeDeleted: { type: 'boolean' } } }
    }
  }, async (request) => {
    const query = request.query as { includeDeleted?: boolean }
    return await withPresence(await records.get(kind, (request.params as { id: string }).id, query), blobs)
  })

  app.patch(`${base}/:id`, { schema: { tags: tag, summary: `Change a ${kind} (owner or admin)`, params: idParams, body: BODIES[kind].patch } }, async (request) => {
    sizes(request.body as Record<string, unknown>)
    return await records.patch(who(request), kind, (request.params as { id: string }).id, request.body as any)
  })

  app.delete(`${base}/:id`, { schema: { tags: tag, summary: `Delete a ${kind} (a tombstone that replicates)`, params: idParams } }, async (request, reply) => {
    await records.remove(who(request), kind, (request.params as { id: string }).id)
    return await reply.status(204).send()
  })

  app.post(`${base}/:id/restore`, { schema: { tags: tag, summary: `Restore a deleted ${kind}`, params: idParams } }, async (request) =>
    await records.restore(who(request), kind, (request.params as { id: string }).id))
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
 * Marks each file of each version (and a report's files) with `present`:
 * whether its bytes are on this node. Metadata syncs everywhere; bytes may
 * not have arrived yet.
 */
async function withPresence<T extends Record<string, unknown>> (view: T, blobs: BlobStore): Promise<T> {
  const files = [
    ...((view.versions as Array<{ files: Array<Record<string, unknown>> }> | undefined) ?? []).flatMap(v => v.files),
    ...((view.files as Array<Record<string, unknown>> | undefined) ?? [])
  ]
  await Promise.all(files.map(async f => { f.present = await blobs.has(String(f.sha256)) }))
  return view
}
