import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AuditLog } from '../../audit.ts'
import type { PeerBook } from '../../peer/peer-book.ts'
import type { SyncService } from '../../peer/sync/service.ts'
import { requireAdmin } from '../../warehouse/principal.ts'
import { who } from '../auth-hook.ts'
import type { Nodes } from '../../warehouse/nodes.ts'
import type { NodeRole } from '../../trust/roster.ts'
import { DwError } from '../../errors.ts'
import { parsePeerAddress } from '../../peer/peer-address.ts'
import { nodeRole, peerIdParams } from '../schemas.ts'
import { MAX_RATE, MIN_RATE, type LinkPatch, type LinkProfile } from '../../peer/link-profile.ts'

export interface MeshApi {
  book: PeerBook
  sync: SyncService
  audit: AuditLog
  self: () => { peerId: string, addresses: string[], seq: number, epoch: string }
  /** Blob transfers in progress (bytes done and total) and files waiting for a peer. */
  transfers?: () => { transfers: unknown[], wanted: unknown[], blobBytesOut: number, copies?: unknown }
  /** The roster: on a full node, adding a peer also adds it to the mesh. */
  nodes?: Nodes
  /** Why a peer turned this node away, in words (the protocol host watches its connections). */
  refusal?: (peerId: string) => string | undefined
}

/** Each peer's sync status with its link profile from the peer book. */
function withLinks (mesh: MeshApi): Array<ReturnType<SyncService['status']>[number] & { link?: LinkProfile }> {
  return mesh.sync.status().map(status => {
    const link = mesh.book.link(status.peerId)
    const refused = status.connected ? undefined : mesh.refusal?.(status.peerId)
    // A refused peer's own error is an EOF at best: its refusal says why.
    // The sync service prefixes dial errors with "unreachable: ", which
    // PEER_UNREACHABLE's message already says.
    const lastError = refused ?? status.lastError?.replace(/^unreachable: (?=unreachable at |refused: )/, '')
    const explained = lastError === undefined ? status : { ...status, lastError }
    return link === undefined ? explained : { ...explained, link: { ...link } }
  })
}

export const adminOnly = async (request: FastifyRequest): Promise<void> => { requireAdmin(who(request)) }

/** The peer book, admins only. */
export function peerRoutes (app: FastifyInstance, mesh: MeshApi): void {
  app.get('/peers', { preHandler: adminOnly, schema: { tags: ['peers'], summary: 'Trusted peers with connection and sync status (admins)' } }, async () =>
    ({ items: withLinks(mesh) }))

  app.post('/peers', {
    preHandler: adminOnly,
    schema: {
      tags: ['peers'],
      summary: 'Trust a peer by its multiaddr, which must end in /p2p/<peerId> (admins). On a full node, a peer not yet in the mesh roster joins it with `role` (default contributor).',
      body: {
        type: 'object',
        required: ['multiaddr'],
        additionalProperties: false,
        properties: { multiaddr: { type: 'string', maxLength: 1024 }, name: { type: 'string', maxLength: 100 }, role: nodeRole }
      }
    }
  }, async (request, reply) => {
    const body = request.body as { multiaddr: string, name?: string, role?: NodeRole }
    const self = mesh.self().peerId
    const canEnrol = mesh.nodes !== undefined && await mesh.nodes.standing(self) === 'full'
    if (body.role !== undefined && !canEnrol) {
      throw new DwError('FORBIDDEN', 'this node is not a full node of a mesh, so it cannot give a peer a role; add the peer without --role, and give it a role on a full node')
    }
    await refuseRevoked(mesh, parsePeerAddress(body.multiaddr, self).peerId)
    const entry = await mesh.book.add(body.multiaddr, body.name)
    await mesh.audit.append({ type: 'peer.add', actor: who(request).userId, peer: entry.peerId, details: { addrs: entry.addrs, name: entry.name } })
    let enrolled: NodeRole | undefined
    if (canEnrol && await (mesh.nodes as Nodes).enrol(who(request), entry.peerId, body.role ?? 'contributor', body.name)) {
      enrolled = body.role ?? 'contributor'
      await mesh.audit.append({ type: 'node.role', actor: who(request).userId, peer: entry.peerId, details: { role: enrolled } })
    }
    mesh.sync.peerAdded(entry.peerId)
    return await reply.status(201).send(enrolled === undefined ? entry : { ...entry, enrolled })
  })

  app.delete('/peers/:peerId', { preHandler: adminOnly, schema: { tags: ['peers'], summary: 'Stop trusting a peer; its connections close at once (admins)', params: peerIdParams } }, async (request, reply) => {
    const { peerId } = request.params as { peerId: string }
    await mesh.book.remove(peerId)
    await mesh.sync.peerRemoved(peerId)
    await mesh.audit.append({ type: 'peer.remove', actor: who(request).userId, peer: peerId })
    return await reply.status(204).send()
  })

  app.patch('/peers/:peerId', {
    preHandler: adminOnly,
    schema: {
      tags: ['peers'],
      summary: 'Set a peer\'s link profile (admins): maxRate caps bytes per second each way (file transfers, and sync sent to it); filesWindow ("HH:MM-HH:MM", local time) confines background file fetches from it; metered: no background file fetches from it at all. null (metered: false) clears a setting.',
      params: peerIdParams,
      body: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: {
          maxRate: { type: ['integer', 'null'], minimum: MIN_RATE, maximum: MAX_RATE },
          filesWindow: { type: ['string', 'null'], maxLength: 32 },
          metered: { type: 'boolean' }
        }
      }
    }
  }, async (request) => {
    const { peerId } = request.params as { peerId: string }
    const patch = request.body as LinkPatch
    const entry = await mesh.book.setLink(peerId, patch)
    await mesh.audit.append({ type: 'peer.link', actor: who(request).userId, peer: entry.peerId, details: { set: patch, link: entry.link ?? {} } })
    return entry
  })

  app.get('/peers/pending', { preHandler: adminOnly, schema: { tags: ['peers'], summary: 'Untrusted peers that tried to connect (admins)' } }, async () =>
    ({ items: mesh.book.pending() }))

  app.post('/peers/pending/:peerId/approve', {
    preHandler: adminOnly,
    schema: {
      tags: ['peers'],
      summary: 'Trust a pending peer; give the address it listens on, since it connected from an ephemeral port (admins)',
      params: peerIdParams,
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: { multiaddr: { type: 'string', maxLength: 1024 }, name: { type: 'string', maxLength: 100 } }
      }
    }
  }, async (request) => {
    const { peerId } = request.params as { peerId: string }
    const body = (request.body ?? {}) as { multiaddr?: string, name?: string }
    await refuseRevoked(mesh, peerId)
    const entry = await mesh.book.approve(peerId, body.multiaddr, body.name)
    await mesh.audit.append({ type: 'peer.approve', actor: who(request).userId, peer: peerId, details: { addrs: entry.addrs } })
    mesh.sync.peerAdded(peerId)
    return entry
  })

  app.delete('/peers/pending/:peerId', { preHandler: adminOnly, schema: { tags: ['peers'], summary: 'Forget a pending request without trusting the peer; if it knocks again it is listed again (admins)', params: peerIdParams } }, async (request, reply) => {
    const { peerId } = request.params as { peerId: string }
    await mesh.book.dismiss(peerId)
    await mesh.audit.append({ type: 'peer.dismiss', actor: who(request).userId, peer: peerId })
    return await reply.status(204).send()
  })
}

/** A revoked identity never comes back: trusting it again would let it pull and relay. */
async function refuseRevoked (mesh: MeshApi, peerId: string): Promise<void> {
  if (mesh.nodes !== undefined && await mesh.nodes.standing(peerId) === 'revoked') {
    throw new DwError('CONFLICT', `node ${peerId} was revoked from the mesh; a revoked node needs a new identity (dw init --join in a fresh data directory)`)
  }
}

/** Sync status, sync-now and the audit log. */
export function syncRoutes (app: FastifyInstance, mesh: MeshApi): void {
  app.get('/sync/status', { schema: { tags: ['sync'], summary: 'This node and, per peer, connection, last sync, lag, bytes, last error' } }, async () => {
    const self = mesh.self()
    return { peerId: self.peerId, addresses: self.addresses, feedHead: self.seq, epoch: self.epoch, peers: withLinks(mesh), ...mesh.transfers?.() }
  })

  app.post('/sync/now', {
    preHandler: adminOnly,
    schema: {
      tags: ['sync'],
      summary: 'Sync with every trusted peer now and wait (admins); full: true compares every record the peers hold (the repair pass)',
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: { timeoutMs: { type: 'integer', minimum: 100, maximum: 600_000 }, full: { type: 'boolean' } }
      }
    }
  }, async (request) => {
    const body = (request.body ?? {}) as { timeoutMs?: number, full?: boolean }
    const results = (await mesh.sync.syncNow(body.timeoutMs, { full: body.full })).map(r => {
      // The session may fail on a stream the refusing peer already closed; say why it closed.
      const refused = r.ok ? undefined : mesh.refusal?.(r.peerId)
      return refused === undefined ? r : { ...r, error: refused }
    })
    return { ok: results.every(r => r.ok), results }
  })

  app.get('/audit', {
    preHandler: adminOnly,
    schema: {
      tags: ['sync'],
      summary: 'The audit log, newest first (admins)',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          before: { type: 'string', maxLength: 64 },
          type: { type: 'string', maxLength: 64 },
          peer: { type: 'string', maxLength: 128 }
        }
      }
    }
  }, async (request) => {
    return { items: await mesh.audit.list(request.query as { limit: number }) }
  })
}
