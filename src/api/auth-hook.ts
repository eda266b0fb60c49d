import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { DwError } from '../errors.ts'
import type { Principal } from '../warehouse/principal.ts'
import type { Users } from '../warehouse/users.ts'

declare module 'fastify' {
  interface FastifyRequest { principal: Principal | undefined }
  interface FastifyContextConfig {
    public?: boolean
    /**
     * A bearer token this route also accepts, checked before sessions: a
     * client that cannot sign in (Prometheus on /metrics). The request then
     * has no principal, and the route checks the token again itself.
     */
    acceptsToken?: (token: string) => boolean
  }
}

export interface AuthHookOptions {
  users: Users
  /**
   * The node token `dw` commands read from the data directory. It acts as
   * the node's admin account and lives only as long as the running node.
   */
  nodeToken: string | undefined
  nodeTokenUserId: string
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

export function registerAuthHook (app: FastifyInstance, options: AuthHookOptions): void {
  const nodeTokenDigest = options.nodeToken !== undefined ? digest(options.nodeToken) : undefined
  app.decorateRequest('principal', undefined)
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (request.routeOptions.config?.public === true) return
    const header = request.headers.authorization
    const token = typeof header === 'string' && /^Bearer [A-Za-z0-9_-]{16,128}$/.test(header) ? header.slice(7) : undefined
    if (token === undefined) throw new DwError('UNAUTHENTICATED', 'sign in first: send "Authorization: Bearer <token>" from POST /auth/login')
    if (request.routeOptions.config?.acceptsToken?.(token) === true) return
    if (nodeTokenDigest !== undefined && timingSafeEqual(digest(token), nodeTokenDigest)) {
      request.principal = await options.users.principal(options.nodeTokenUserId) ??
        { userId: options.nodeTokenUserId, username: 'node', role: 'admin' }
      return
    }
    const principal = await options.users.authenticate(token)
    if (principal === undefined) throw new DwError('UNAUTHENTICATED', 'the token is unknown or expired; sign in again')
    request.principal = principal
  })
}

export function who (request: FastifyRequest): Principal {
  if (request.principal === undefined) throw new DwError('UNAUTHENTICATED', 'sign in first')
  return request.principal
}
