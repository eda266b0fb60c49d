import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { requireAdmin } from '../../warehouse/principal.ts'
import { who } from '../auth-hook.ts'

export interface MetricsApi {
  contentType: string
  text: () => Promise<string>
  /** A token that may read /metrics and nothing else (config.json `metrics.token`). */
  token: string | undefined
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

function bearer (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  return typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined
}

/**
 * `GET /metrics` in the Prometheus text format: for admins, or for a
 * scraper holding the metrics token, which opens this route only.
 */
export function metricsRoutes (app: FastifyInstance, metrics: MetricsApi): void {
  const tokenDigest = metrics.token === undefined ? undefined : digest(metrics.token)
  const isMetricsToken = (token: string): boolean => tokenDigest !== undefined && timingSafeEqual(digest(token), tokenDigest)
  app.get('/metrics', {
    // The auth hook lets the metrics token through to this route without a principal...
    config: { acceptsToken: isMetricsToken },
    // ...and here anyone else must be an admin (the hook has refused what is no token at all).
    preHandler: async (request) => {
      const token = bearer(request)
      if (token !== undefined && isMetricsToken(token)) return
      requireAdmin(who(request))
    },
    schema: { tags: ['node'], summary: 'Metrics in the Prometheus text format (admins, or the metrics token from config.json "metrics.token")' }
  }, async (_request, reply) => {
    const text = await metrics.text()
    return await reply.type(metrics.contentType).send(text)
  })
}
