import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'

/** The page's files in src/web, and where each is served. */
const ASSETS = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/ui/status.css', file: 'status.css', type: 'text/css; charset=utf-8' },
  { path: '/ui/status.js', file: 'status.js', type: 'text/javascript; charset=utf-8' },
  { path: '/ui/favicon.svg', file: 'favicon.svg', type: 'image/svg+xml' }
] as const

/**
 * Only this node's own files load and run: no inline script or style, so a
 * hostile site's dataset name that slipped into the DOM as markup still
 * could not execute; no frames around the page (clickjacking); forms and
 * requests go to this node only. A site's link may be down for days, so the
 * page needs nothing from elsewhere anyway.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

export const WEB_DIR = join(import.meta.dirname, '..', '..', 'web')

/**
 * The status page (`GET /` and its assets under `/ui/`), public so the
 * sign-in form loads; everything it shows comes from the authenticated API
 * with the token the page gets from `POST /auth/login`. The files are read
 * once, when the routes are added, and served from memory; an ETag lets a
 * phone on a metered link skip bytes it already has.
 */
export function statusPageRoutes (app: FastifyInstance, dir = WEB_DIR): void {
  for (const asset of ASSETS) {
    const body = readFileSync(join(dir, asset.file))
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    app.get(asset.path, { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
      void reply.headers({
        'content-security-policy': STATUS_PAGE_CSP,
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'referrer-policy': 'no-referrer',
        // Revalidated on every load: a node upgrade serves its new script at once.
        'cache-control': 'no-cache',
        etag
      })
      if (request.headers['if-none-match'] === etag) return await reply.status(304).send()
      return await reply.type(asset.type).send(body)
    })
  }
}
