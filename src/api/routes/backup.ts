import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { archiveName, type Backups } from '../../backup/backups.ts'
import { adminOnly } from './peers.ts'

/** Backups of the running node (admins): the archive itself, and how the last one went. */
export function backupRoutes (app: FastifyInstance, backups: Backups, nodeName: string): void {
  app.get('/backup', {
    preHandler: adminOnly,
    schema: {
      tags: ['node'],
      summary: 'A consistent backup of this node as a tar archive, taken while it runs (admins). `files=manifest` leaves the file bytes out (the default for S3 stores, whose bucket keeps them)',
      querystring: { type: 'object', additionalProperties: false, properties: { files: { type: 'string', enum: ['include', 'manifest'] } } }
    }
  }, async (request, reply) => {
    const { files } = request.query as { files?: 'include' | 'manifest' }
    const backup = await backups.stream({ includeFiles: files === undefined ? backups.blobStore === 'fs' : files === 'include' })
    const stream = Readable.from(backup.stream, { objectMode: false })
    // A client that goes away ends the backup (and releases the garbage collector).
    stream.on('close', () => { backup.stream.destroy() })
    return await reply
      .header('content-type', 'application/x-tar')
      .header('content-disposition', `attachment; filename="${archiveName(nodeName, new Date(backup.manifest.createdAt))}"`)
      .header('x-dw-backup-estimate', String(backup.estimate))
      .send(stream)
  })

  app.get('/backup/status', {
    preHandler: adminOnly,
    schema: { tags: ['node'], summary: 'The last backup (time, result, size), the schedule and the next scheduled backup (admins)' }
  }, async () => await backups.status())
}

