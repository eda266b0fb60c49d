import type { FastifyInstance } from 'fastify'
import type { AuditLog } from '../../audit.ts'
import type { Nodes } from '../../warehouse/nodes.ts'
import type { NodeRole } from '../../trust/roster.ts'
import { who } from '../auth-hook.ts'
import { nodeRole, peerIdParams, tag } from '../schemas.ts'
import { adminOnly } from './peers.ts'

export interface RosterApi {
  nodes: Nodes
  audit: AuditLog
  self: string
  /** This site's name, for the roster entry of a mesh founded here. */
  name: string
}

/** Copy settings as the API shows them: an unset mesh-wide target is null (the default applies). */
function wire (s: { copies: number | undefined, copiesByTag: Record<string, number>, defaultCopies: number }): { copies: number | null, copiesByTag: Record<string, number>, defaultCopies: number } {
  return { copies: s.copies ?? null, copiesByTag: s.copiesByTag, defaultCopies: s.defaultCopies }
}

/** The mesh roster: which nodes belong and what each may write (changes on full nodes, by admins). */
export function nodeRoutes (app: FastifyInstance, api: RosterApi): void {
  app.get('/nodes', { schema: { tags: ['nodes'], summary: 'The mesh roster: every node, its role, and this node' } }, async () => ({
    meshId: api.nodes.meshId ?? null,
    self: api.self,
    selfRole: await api.nodes.standing(api.self),
    items: await api.nodes.list()
  }))

  app.post('/nodes/found', {
    preHandler: adminOnly,
    schema: {
      tags: ['nodes'],
      summary: 'Found a mesh on a node that has none (admins); adopt: true also vouches for the history already here, written before changes were signed (upgrading a site of the previous version)',
      body: { type: ['object', 'null'], additionalProperties: false, properties: { adopt: { type: 'boolean' } } }
    }
  }, async (request, reply) => {
    const body = (request.body ?? {}) as { adopt?: boolean }
    const founded = await api.nodes.found(api.name, { adopt: body.adopt === true })
    await api.audit.append({ type: 'node.role', actor: who(request).userId, peer: api.self, details: { role: 'full', founded: founded.meshId, attested: founded.attested } })
    return await reply.status(201).send(founded)
  })

  app.put('/nodes/:peerId', {
    preHandler: adminOnly,
    schema: {
      tags: ['nodes'],
      summary: 'Add a node to the roster or change its role (admins, on a full node)',
      params: peerIdParams,
      body: { type: 'object', required: ['role'], additionalProperties: false, properties: { role: nodeRole, name: { type: 'string', maxLength: 100 } } }
    }
  }, async (request) => {
    const { peerId } = request.params as { peerId: string }
    const body = request.body as { role: NodeRole, name?: string }
    const entry = await api.nodes.setRole(who(request), peerId, body.role, body.name)
    await api.audit.append({ type: 'node.role', actor: who(request).userId, peer: peerId, details: { role: body.role } })
    return entry
  })

  app.get('/mesh/copies', {
    schema: { tags: ['nodes'], summary: 'Copy targets: how many sites must hold each file, mesh-wide and per tag (docs/files.md, "Copies")' }
  }, async () => wire(await api.nodes.copySettings()))

  app.put('/mesh/copies', {
    preHandler: adminOnly,
    schema: {
      tags: ['nodes'],
      summary: 'Set how many sites must hold each file, mesh-wide or (with tag) for records with a tag; null clears it (admins, on a full node)',
      body: {
        type: 'object',
        required: ['copies'],
        additionalProperties: false,
        properties: { copies: { type: ['integer', 'null'], minimum: 1, maximum: 10 }, tag }
      }
    }
  }, async (request) => {
    const body = request.body as { copies: number | null, tag?: string }
    const settings = await api.nodes.setCopies(who(request), body.copies ?? undefined, body.tag)
    await api.audit.append({ type: 'mesh.copies', actor: who(request).userId, details: { copies: body.copies, ...(body.tag === undefined ? {} : { tag: body.tag }) } })
    return wire(settings)
  })

  app.post('/nodes/:peerId/revoke', {
    preHandler: adminOnly,
    schema: { tags: ['nodes'], summary: 'Revoke a node for good: its later changes are refused everywhere and its connections close (admins, on a full node)', params: peerIdParams }
  }, async (request) => {
    const { peerId } = request.params as { peerId: string }
    await api.nodes.revoke(who(request), peerId)
    await api.audit.append({ type: 'node.revoke', actor: who(request).userId, peer: peerId })
    // The roster change itself cuts the node off here (src/start/peering.ts), as on every node it reaches.
    return { peerId, role: 'revoked' }
  })
}
