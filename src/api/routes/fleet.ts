import type { FastifyInstance } from 'fastify'
import type { FleetView } from '../../start/fleet.ts'
import { adminOnly } from './peers.ts'

/**
 * The fleet view, admins only: it shows every site's links, disk and
 * backups, which members have no need of (the peer book is admins' too).
 */
export function fleetRoutes (app: FastifyInstance, fleet: { view: () => Promise<FleetView> }): void {
  app.get('/fleet', {
    preHandler: adminOnly,
    schema: {
      tags: ['nodes'],
      summary: 'Every node of the mesh roster with its latest status (as of when, via which peer), its lag, free disk, files below target, quarantine, and a verdict (healthy, warning, critical) by the thresholds in config.json "fleet" (admins)'
    }
  }, async () => await fleet.view())
}
