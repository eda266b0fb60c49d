import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import multipart from '@fastify/multipart'
import swagger from '@fastify/swagger'
import type { Files } from '../warehouse/files.ts'
import type { Records } from '../warehouse/records.ts'
import type { Users } from '../warehouse/users.ts'
import type { AuditLog } from '../audit.ts'
import { registerAuthHook } from './auth-hook.ts'
import { limitJsonDepth } from './json-body.ts'
import { errorHandler, notFoundHandler } from './errors.ts'
import { validatorCompiler } from './validator.ts'
import { authRoutes } from './routes/auth.ts'
import { recordRoutes } from './routes/records.ts'
import { userRoutes } from './routes/users.ts'
import { versionRoutes } from './routes/versions.ts'
import { statusPageRoutes } from './routes/status-page.ts'
import { reportFileRoutes } from './routes/report-files.ts'
import type { SiteAdmins } from '../warehouse/site-admins.ts'

export interface ApiServices {
  users: Users
  records: Records
  files: Files
  audit?: AuditLog
  /** Facts for /healthz. */
  health: () => Record<string, unknown>
  /** Other sites' bootstrap admins, named `admin@<site>` wherever their ids show. */
  siteAdmins?: SiteAdmins
}

export interface ApiOptions {
  nodeToken?: string
  nodeTokenUserId: string
  logger?: boolean | object
  /** Largest accepted file in a version upload. */
  maxFileBytes?: number
  /** Extra route groups (peers, sync...) registered by the node. */
  plugins?: Array<(app: FastifyInstance) => void>
  /** Serve HTTPS with this certificate (chain) and key, PEM. */
  https?: { cert: string | Buffer, key: string | Buffer }
  /** Hooks that must see every route (request metrics): added before any route is. */
  instrument?: (app: FastifyInstance) => void
}

export async function buildApi (services: ApiServices, options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: 1024 * 1024,
    // File names are path parameters and may be up to 255 bytes, percent-encoded.
    routerOptions: { maxParamLength: 4096 },
    // A client that sends headers and then nothing is dropped after two idle minutes.
    connectionTimeout: 120_000,
    // Router errors (a bad %-escape, a parameter too long) in the API's error format.
    frameworkErrors: (err, _request, reply) => {
      void (reply as FastifyReply).status(400).send({ error: { code: 'INVALID_INPUT', message: `bad request: ${err.message}` } })
    },
    // A node stopping must not wait for a client in the middle of a long download.
    forceCloseConnections: true,
    ...(options.https === undefined ? {} : { https: options.https })
  })
  options.instrument?.(app)
  limitJsonDepth(app)
  app.setValidatorCompiler(validatorCompiler())
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)
  await app.register(swagger, {
    openapi: {
      info: { title: 'dw-mesh node API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }]
    }
  })
  await app.register(multipart, {
    // Keep the client's file name as sent, so a name with a path is refused
    // with a clear error rather than silently cut to its last segment.
    preservePath: true,
    limits: { fileSize: options.maxFileBytes ?? 64 * 1024 ** 3, files: 1000, fields: 10, fieldSize: 64 * 1024, parts: 1010 }
  })
  registerAuthHook(app, { users: services.users, nodeToken: options.nodeToken, nodeTokenUserId: options.nodeTokenUserId })

  app.get('/healthz', { config: { public: true }, schema: { tags: ['node'], summary: 'Liveness' } }, async () => ({ ok: true, ...services.health() }))
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger())
  statusPageRoutes(app)
  authRoutes(app, services.users)
  userRoutes(app, services.users, services.audit, services.siteAdmins)
  const userNames = async (): Promise<Map<string, string>> => {
    const names = new Map<string, string>()
    for (const user of await services.users.list()) if (user.username !== undefined) names.set(user.id, user.username)
    // After the accounts: this node's own bootstrap admin reads as admin@<site> too, as on every other site.
    for (const [id, name] of await services.siteAdmins?.names() ?? []) names.set(id, name)
    return names
  }
  for (const kind of ['dataset', 'model', 'report'] as const) recordRoutes(app, services.records, kind, services.files, userNames)
  versionRoutes(app, services.records, services.files, 'dataset')
  versionRoutes(app, services.records, services.files, 'model')
  reportFileRoutes(app, services.records, services.files)
  for (const plugin of options.plugins ?? []) plugin(app)
  return app
}
