import type { FastifyInstance } from 'fastify'
import { Histogram, type Registry } from 'prom-client'

/** Up to ten minutes: uploads and downloads of large files are requests too. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600]

/**
 * Times every API request. The route label is the route's pattern
 * (`/datasets/:id`), never the URL, so ids do not become series; requests
 * no route matched share `route="unmatched"`. Added before any route, since
 * a hook applies to the routes declared after it.
 */
export function timeRequests (app: FastifyInstance, registry: Registry): void {
  const histogram = new Histogram({
    name: 'dw_http_request_duration_seconds',
    help: 'HTTP API requests by method, route pattern and status code: time from the request arriving to the response sent.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: BUCKETS,
    registers: [registry]
  })
  app.addHook('onResponse', async (request, reply) => {
    histogram.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })
}
