import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Multipart } from '@fastify/multipart'
import type { BlobStore } from '../../blobs/blob-store.ts'
import type { Files } from '../../warehouse/files.ts'
import type { FileRef, Version } from '../../crdt/records/versions.ts'
import type { Records } from '../../warehouse/records.ts'
import { DwError } from '../../errors.ts'
import { isMediaType } from '../../trust/file-refs.ts'
import { who } from '../auth-hook.ts'
import { id, idParams } from '../schemas.ts'
import { checkFileName, checkJsonSize, checkNumbers } from '../validate.ts'

const MAX_NOTE = 10_000

/** What an upload route takes besides files: its form fields (text of at most MAX_NOTE characters) and what the files become, for messages. */
export interface UploadShape { fields: string[], what: string }

export interface Upload { files: FileRef[], fields: Record<string, string> }

/**
 * Reads a multipart upload: every file part streams straight into the blob
 * store (hashed on the way, never held in memory); the form fields `shape`
 * names may come before or after the files. `stored` collects the blobs
 * this upload added to the store, so a refused upload can take them out
 * again.
 */
export async function receiveFiles (request: FastifyRequest, blobs: BlobStore, stored: string[], shape: UploadShape): Promise<Upload> {
  if (!request.isMultipart()) throw new DwError('INVALID_INPUT', 'send the files as multipart/form-data')
  const files: FileRef[] = []
  const fields: Record<string, string> = {}
  try {
    for await (const part of request.parts()) await receivePart(part)
  } catch (err) {
    if (err instanceof DwError) throw err
    const code = (err as { code?: string }).code
    if (code !== undefined && /^FST_(REQ_FILE_TOO_LARGE|FILES_LIMIT|PARTS_LIMIT|FIELDS_LIMIT)/.test(code)) throw err
    // busboy's own errors: a missing boundary, a truncated body, a bad header.
    throw new DwError('INVALID_INPUT', `malformed multipart upload: ${(err as Error).message}`, { cause: err })
  }
  if (files.length === 0) throw new DwError('INVALID_INPUT', `${shape.what} needs at least one file`)
  return { files, fields }

  async function receivePart (part: Multipart): Promise<void> {
    if (part.type === 'field') {
      if (!shape.fields.includes(part.fieldname)) {
        throw new DwError('INVALID_INPUT', `unknown form field "${part.fieldname}" (only ${[...shape.fields.map(f => `"${f}"`), 'files'].join(' and ')})`)
      }
      if (typeof part.value !== 'string' || part.value.length > MAX_NOTE) throw new DwError('INVALID_INPUT', `${part.fieldname} must be text of at most ${MAX_NOTE} characters`)
      fields[part.fieldname] = part.value
      return
    }
    if (typeof part.filename !== 'string') throw new DwError('INVALID_INPUT', 'every file part needs a file name')
    const name = checkFileName(part.filename)
    if (files.some(f => f.name === name)) throw new DwError('INVALID_INPUT', `two files named ${name} in one upload`)
    const mediaType = part.mimetype || 'application/octet-stream'
    if (!isMediaType(mediaType)) {
      throw new DwError('INVALID_INPUT', `${name}: invalid media type ${JSON.stringify(mediaType.slice(0, 100))}: type/subtype (RFC 6838) with optional parameters, printable ASCII, at most 255 characters`)
    }
    const blob = await blobs.put(part.file)
    if (!blob.existed) stored.push(blob.sha256)
    if (part.file.truncated) throw new DwError('PAYLOAD_TOO_LARGE', `${name} is larger than this node accepts`)
    files.push({ name, sha256: blob.sha256, size: blob.size, mediaType })
  }
}

/**
 * Receives an upload for record `key` and hands it to `commit`, which
 * writes the record. The blobs are held against garbage collection until
 * the record references them; if anything refuses the upload, the blobs it
 * added are taken out again (a crash mid-upload leaves them to `dw gc`).
 */
export async function acceptUpload<T> (request: FastifyRequest, files: Files, key: string, shape: UploadShape, commit: (upload: Upload) => Promise<T>): Promise<T> {
  const stored: string[] = []
  try {
    return await files.guard.hold(async () => {
      const upload = await receiveFiles(request, files.store, stored, shape)
      // The uploader holds these bytes: the record's references to them stand even if they were a deleted record's.
      await files.vouchUploaded(key, upload.files.map(f => f.sha256))
      return await commit(upload)
    })
  } catch (err) {
    await files.discardUnreferenced(stored).catch((cleanupErr: unknown) => {
      request.log.warn({ err: cleanupErr }, 'could not remove the blobs of a refused upload; dw gc will')
    })
    throw err
  }
}

/**
 * Streams `file` of record `key`: from this node, or fetched from a peer
 * on demand (503 with Retry-After, and queued, when no connected peer has
 * it; see Files.open).
 */
export async function sendFile (reply: FastifyReply, files: Files, file: FileRef, key: string): Promise<FastifyReply> {
  const stream = await files.open(file, key)
  void reply.header('content-length', String(file.size))
  void reply.header('content-disposition', contentDisposition(file.name))
  void reply.header('x-content-sha256', file.sha256)
  // A member's file is the member's content, not the API's: never sniffed
  // into something else, never rendered as a page of this origin.
  void reply.header('x-content-type-options', 'nosniff')
  void reply.header('content-security-policy', "default-src 'none'; sandbox")
  return await reply.type(isMediaType(file.mediaType) ? file.mediaType : 'application/octet-stream').send(stream)
}

/**
 * `attachment` with the name as RFC 6266 wants it: a plain ASCII fallback
 * (`filename="..."`, anything else replaced by "_") and the real name as
 * RFC 5987 `filename*=UTF-8''...`. Control characters and path separators
 * become "_" in both; no quote, CR or LF reaches the header.
 */
export function contentDisposition (name: string): string {
  const safe = name.toWellFormed().replace(/[\u0000-\u001f\u007f-\u009f/\\]/g, '_')
  const ascii = safe.replace(/[^\x20-\x7e]|["%]/g, '_')
  const encoded = encodeURIComponent(safe).replace(/['()*]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`
}

function findFile (record: Record<string, unknown>, versionId: string, name: string): FileRef {
  const version = ((record.versions ?? []) as Version[]).find(v => v.id === versionId)
  if (version === undefined) throw new DwError('NOT_FOUND', `no version ${versionId}`)
  const file = version.files.find(f => f.name === name)
  if (file === undefined) throw new DwError('NOT_FOUND', `version ${versionId} has no file named ${JSON.stringify(name)}`)
  return file
}

/** Versions and files of datasets and models. */
export function versionRoutes (app: FastifyInstance, records: Records, files: Files, kind: 'dataset' | 'model'): void {
  const base = `/${kind}s/:id`
  const tag = [`${kind}s`]

  app.post(`${base}/versions`, {
    schema: {
      tags: tag,
      summary: `Add a version: multipart/form-data with one or more files and an optional "note" field`,
      consumes: ['multipart/form-data'],
      params: idParams
    }
  }, async (request, reply) => {
    const recordId = (request.params as { id: string }).id
    const principal = who(request)
    // Refuse early, before accepting gigabytes for a record that is gone.
    await records.get(kind, recordId)
    const version = await acceptUpload(request, files, `${kind}/${recordId}`, { fields: ['note'], what: 'a version' },
      async upload => await records.addVersion(principal, kind, recordId, upload.files, upload.fields.note ?? ''))
    return await reply.status(201).send(version)
  })

  app.get(`${base}/versions/:versionId/files/:name`, {
    schema: {
      tags: tag,
      summary: 'Download one file of a version (streamed)',
      params: {
        type: 'object',
        required: ['id', 'versionId', 'name'],
        additionalProperties: false,
        properties: { id, versionId: id, name: { type: 'string', minLength: 1, maxLength: 1024 } }
      }
    }
  }, async (request, reply) => {
    const params = request.params as { id: string, versionId: string, name: string }
    const record = await records.get(kind, params.id)
    const file = findFile(record, params.versionId, params.name)
    return await sendFile(reply, files, file, `${kind}/${params.id}`)
  })

  app.get(`${base}/availability`, {
    schema: { tags: tag, summary: 'Per version and file: whether it is here, which connected peers have it, its copy target, and every site that holds it', params: idParams }
  }, async (request) => {
    const record = await records.get(kind, (request.params as { id: string }).id)
    return { items: await files.availability((record.versions ?? []) as Version[], { tags: record.tags as string[] | undefined, copies: record.copies }) }
  })

  if (kind === 'model') {
    app.post(`${base}/training`, {
      schema: {
        tags: tag,
        summary: 'Append a training-history entry',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            note: { type: 'string', maxLength: MAX_NOTE, default: '' },
            versionId: id,
            params: { type: 'object', maxProperties: 200, default: {} },
            metrics: { type: 'object', maxProperties: 200, additionalProperties: { type: 'number' }, default: {} }
          }
        }
      }
    }, async (request, reply) => {
      const entry = request.body as { note: string, versionId?: string, params: Record<string, unknown>, metrics: Record<string, number> }
      checkJsonSize('params', entry.params)
      checkNumbers('metrics', entry.metrics)
      return await reply.status(201).send(await records.addTrainingEntry(who(request), (request.params as { id: string }).id, entry))
    })
  }
}
