import type { FastifyInstance } from 'fastify'
import type { Users, NewUser, UserChanges } from '../../warehouse/users.ts'
import { requireAdmin } from '../../warehouse/principal.ts'
import { who } from '../auth-hook.ts'
import { idParams, jsonMap } from '../schemas.ts'
import { checkJsonSize } from '../validate.ts'
import type { AuditLog } from '../../audit.ts'
import { isDwError } from '../../errors.ts'
import type { SiteAdmins } from '../../warehouse/site-admins.ts'

const username = { type: 'string', minLength: 1, maxLength: 64 } as const
const password = { type: 'string', minLength: 1, maxLength: 1024 } as const
const role = { type: 'string', enum: ['admin', 'member'] } as const
const email = { type: 'string', maxLength: 254 } as const
const displayName = { type: 'string', maxLength: 200 } as const

export function userRoutes (app: FastifyInstance, users: Users, audit?: AuditLog, siteAdmins?: SiteAdmins): void {
  app.get('/users', { schema: { tags: ['users'], summary: 'List accounts' } }, async () => {
    const items = await users.list()
    return { items, total: items.length }
  })

  app.get('/users/conflicts', {
    schema: { tags: ['users'], summary: 'Usernames claimed by more than one account after a merge (admins)' }
  }, async (request) => {
    requireAdmin(who(request))
    return { items: users.conflicts() }
  })

  app.post('/users', {
    schema: {
      tags: ['users'],
      summary: 'Create an account (admins)',
      body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username, password, role: { ...role, default: 'member' }, email, displayName } }
    }
  }, async (request, reply) => {
    const user = await users.create(who(request), request.body as NewUser)
    await audit?.append({ type: 'user.create', actor: who(request).userId, details: { id: user.id, username: user.username } })
    return await reply.status(201).send(user)
  })

  app.get('/users/:id', { schema: { tags: ['users'], summary: 'An account; for another site\'s bootstrap admin (never replicated) a read-only description naming its site', params: idParams } }, async (request) => {
    const id = (request.params as { id: string }).id
    try {
      return await users.get(id)
    } catch (err) {
      const admin = isDwError(err, 'NOT_FOUND') ? await siteAdmins?.find(id) : undefined
      if (admin === undefined) throw err
      return admin
    }
  })

  app.patch('/users/:id', {
    schema: {
      tags: ['users'],
      summary: 'Change an account: admins change anything; users their own name, email, preferences and password',
      params: idParams,
      body: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: {
          username,
          email,
          displayName,
          role,
          disabled: { type: 'boolean' },
          password,
          currentPassword: password,
          preferences: jsonMap,
          sites: { type: 'array', maxItems: 1000, uniqueItems: true, items: { type: 'string', minLength: 40, maxLength: 64, pattern: '^[1-9A-HJ-NP-Za-km-z]+$' } }
        }
      }
    }
  }, async (request) => {
    const body = request.body as UserChanges
    checkJsonSize('preferences', body.preferences)
    const id = (request.params as { id: string }).id
    const updated = await users.update(who(request), id, body)
    // Which fields changed, never their values: passwords must not reach the log.
    await audit?.append({ type: 'user.update', actor: who(request).userId, details: { id, fields: Object.keys(body).filter(k => k !== 'currentPassword') } })
    return updated
  })

  app.post('/users/:id/restore', { schema: { tags: ['users'], summary: 'Bring back a deleted account (admins)', params: idParams } }, async (request) => {
    const id = (request.params as { id: string }).id
    const user = await users.restore(who(request), id)
    await audit?.append({ type: 'user.restore', actor: who(request).userId, details: { id } })
    return user
  })

  app.delete('/users/:id', { schema: { tags: ['users'], summary: 'Delete an account (admins); its sessions end at once', params: idParams } }, async (request, reply) => {
    await users.remove(who(request), (request.params as { id: string }).id)
    await audit?.append({ type: 'user.delete', actor: who(request).userId, details: { id: (request.params as { id: string }).id } })
    return await reply.status(204).send()
  })
}
