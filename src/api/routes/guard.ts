import type { FastifyInstance } from 'fastify'
import type { AuditLog } from '../../audit.ts'
import type { Guard } from '../../start/guard.ts'
import { DwError } from '../../errors.ts'
import { who } from '../auth-hook.ts'
import { adminOnly } from './peers.ts'

/** Readiness (anyone, for supervisors and load balancers) and the quarantine (admins). */
export function guardRoutes (app: FastifyInstance, guard: Guard, audit: AuditLog): void {
  app.get('/readyz', {
    config: { public: true },
    schema: { tags: ['node'], summary: 'Readiness: 200 when the store reads and writes, the Automerge engine works and the disk has room; 503 and the failing checks otherwise' }
  }, async (_request, reply) => {
    const readiness = await guard.readiness.check()
    if (readiness.ready) return readiness
    // The usual error shape too, so any client shows why.
    const message = `not ready: ${Object.values(readiness.checks).filter(c => c !== 'ok').join('; ')}`
    return await reply.status(503).send({ ...readiness, error: { code: 'NOT_READY', message } })
  })

  app.get('/quarantine', {
    preHandler: adminOnly,
    schema: { tags: ['node'], summary: 'Documents from peers kept out because loading them broke a limit (admins)' }
  }, async () => ({ items: await guard.quarantine.list(), checkerRestarts: guard.checker.restarts, limits: guard.checker.limits }))

  app.delete('/quarantine/:id', {
    preHandler: adminOnly,
    schema: {
      tags: ['node'],
      summary: 'Drop a quarantine entry (admins): the same bytes, if they come again, are checked again',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f]{64}$' } } }
    }
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    const entry = await guard.quarantine.get(id)
    if (entry === undefined || !await guard.quarantine.drop(id)) throw new DwError('NOT_FOUND', `no quarantine entry ${id}`)
    await audit.append({ type: 'quarantine.drop', actor: who(request).userId, ...(entry.peer === undefined ? {} : { peer: entry.peer }), outcome: 'ok', details: { id, key: entry.key } })
    return await reply.status(204).send()
  })
}
