import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AuditLog } from '../../audit.ts'
import type { Files } from '../../warehouse/files.ts'
import { PinTargets, type PinTarget, type Pins } from '../../warehouse/pins.ts'
import { requireAdmin } from '../../warehouse/principal.ts'
import { who } from '../auth-hook.ts'

const adminOnly = async (request: FastifyRequest): Promise<void> => { requireAdmin(who(request)) }

/** Pins and garbage collection (admins). */
export function fileRoutes (app: FastifyInstance, files: Files, pins: Pins, audit: AuditLog): void {
  app.get('/pins', { preHandler: adminOnly, schema: { tags: ['files'], summary: 'Pins: records whose files this node keeps (admins)' } }, async () =>
    ({ items: pins.list() }))

  app.post('/pins', {
    preHandler: adminOnly,
    schema: {
      tags: ['files'],
      summary: 'Pin a dataset or model (by id), a tag, or a whole kind; matching files are fetched in the background (admins)',
      body: {
        type: 'object',
        required: ['target', 'value'],
        additionalProperties: false,
        properties: { target: { type: 'string', enum: [...PinTargets] }, value: { type: 'string', minLength: 1, maxLength: 64 } }
      }
    }
  }, async (request, reply) => {
    const body = request.body as { target: PinTarget, value: string }
    const { pin, created } = await pins.add(body.target, body.value, who(request).userId)
    if (!created) return await reply.status(200).send(pin)
    await audit.append({ type: 'pin.add', actor: who(request).userId, details: { target: pin.target, value: pin.value } })
    return await reply.status(201).send(pin)
  })

  app.delete('/pins/:id', {
    preHandler: adminOnly,
    schema: { tags: ['files'], params: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: { type: 'string', format: 'uuid' } } } }
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    await pins.remove(id)
    await audit.append({ type: 'pin.remove', actor: who(request).userId, details: { id } })
    return await reply.status(204).send()
  })

  app.get('/transfers', { schema: { tags: ['files'], summary: 'Blob transfers in progress and files waiting for a peer' } }, async () =>
    ({ transfers: files.transfers(), wanted: files.wanted() }))

  app.post('/blobs/gc', {
    preHandler: adminOnly,
    schema: {
      tags: ['files'],
      summary: 'Remove blobs no live record references (admins)',
      body: { type: ['object', 'null'], additionalProperties: false, properties: { dryRun: { type: 'boolean' } } }
    }
  }, async (request) => {
    const body = (request.body ?? {}) as { dryRun?: boolean }
    const result = await files.collectGarbage(body)
    if (body.dryRun !== true) await audit.append({ type: 'blob.gc', actor: who(request).userId, details: { removed: result.removed.length, freedBytes: result.freedBytes } })
    return result
  })
}
