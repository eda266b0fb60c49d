import type { FastifyInstance } from 'fastify'
import type { FileRef } from '../../crdt/records/versions.ts'
import { fileRefs } from '../../crdt/shape.ts'
import type { Files } from '../../warehouse/files.ts'
import { requireOwnerOrAdmin } from '../../warehouse/principal.ts'
import type { Records } from '../../warehouse/records.ts'
import { DwError } from '../../errors.ts'
import { who } from '../auth-hook.ts'
import { id, idParams } from '../schemas.ts'
import { acceptUpload, sendFile } from './versions.ts'

/**
 * A report's attachments: uploaded and downloaded as version files are,
 * appended to the report's `files`, so they replicate and are fetched from
 * peers the same way (the record summary counts them as the report's blobs).
 */
export function reportFileRoutes (app: FastifyInstance, records: Records, files: Files): void {
  app.post('/reports/:id/files', {
    schema: {
      tags: ['reports'],
      summary: 'Attach files to a report (owner or admin): multipart/form-data with one or more files; a name the report already has is refused (409) and nothing is attached',
      consumes: ['multipart/form-data'],
      params: idParams
    }
  }, async (request, reply) => {
    const reportId = (request.params as { id: string }).id
    const principal = who(request)
    // Refuse early, before accepting gigabytes for a report that is gone or not the uploader's.
    const report = await records.get('report', reportId)
    requireOwnerOrAdmin(principal, report.owner, 'report')
    const attached = await acceptUpload(request, files, `report/${reportId}`, { fields: [], what: 'an attachment' },
      async upload => await records.attachReportFiles(principal, reportId, upload.files))
    return await reply.status(201).send({ files: attached })
  })

  app.get('/reports/:id/files/:name', {
    schema: {
      tags: ['reports'],
      summary: 'Download one file of a report (streamed; fetched from a peer when not here yet)',
      params: {
        type: 'object',
        required: ['id', 'name'],
        additionalProperties: false,
        properties: { id, name: { type: 'string', minLength: 1, maxLength: 1024 } }
      }
    }
  }, async (request, reply) => {
    const params = request.params as { id: string, name: string }
    const report = await records.get('report', params.id)
    return await sendFile(reply, files, findFile(report, params.id, params.name), `report/${params.id}`)
  })

  app.get('/reports/:id/availability', {
    schema: { tags: ['reports'], summary: 'Per attached file: whether it is here, which connected peers have it, its copy target, and every site that holds it', params: idParams }
  }, async (request) => {
    const report = await records.get('report', (request.params as { id: string }).id)
    return await files.attachmentAvailability(fileRefs(report.files), { tags: report.tags as string[] | undefined, copies: report.copies })
  })
}

/** The first file of that name in list order: two sites attaching one name at once both keep theirs, and every node serves the same one. */
function findFile (report: Record<string, unknown>, reportId: string, name: string): FileRef {
  const file = fileRefs(report.files).find(f => f.name === name)
  if (file === undefined) throw new DwError('NOT_FOUND', `report ${reportId} has no file named ${JSON.stringify(name)}`)
  return file
}
