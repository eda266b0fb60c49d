import type { FastifyInstance } from 'fastify'
import type { Users } from '../../warehouse/users.ts'

export function authRoutes (app: FastifyInstance, users: Users): void {
  app.post('/auth/login', {
    config: { public: true },
    schema: {
      tags: ['auth'],
      summary: 'Exchange a username and password for a bearer token',
      body: {
        type: 'object',
        required: ['username', 'password'],
        additionalProperties: false,
        properties: { username: { type: 'string', minLength: 1, maxLength: 256 }, password: { type: 'string', minLength: 1, maxLength: 1024 } }
      }
    }
  }, async (request) => {
    const { username, password } = request.body as { username: string, password: string }
    // The socket's address: X-Forwarded-For is not trusted (no trusted-proxy setting), or any client could pick its own budget.
    return await users.login(username, password, request.ip)
  })

  app.post('/auth/logout', { schema: { tags: ['auth'], summary: 'Revoke the token used for this request' } }, async (request, reply) => {
    const header = request.headers.authorization ?? ''
    await users.logout(header.slice('Bearer '.length))
    return await reply.status(204).send()
  })
}
