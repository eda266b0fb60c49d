import { randomBytes } from 'node:crypto'
import { rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { fileRoutes } from '../api/routes/files.ts'
import { peerRoutes, syncRoutes } from '../api/routes/peers.ts'
import { nodeRoutes } from '../api/routes/nodes.ts'
import { buildApi } from '../api/server.ts'
import type { Core } from './core.ts'
import type { FileTransfer } from './file-transfer.ts'
import type { Peering } from './peering.ts'
import type { Unwind } from './unwind.ts'

/** Where a running node tells local `dw` commands how to reach it (mode 0600). */
export const NODE_TOKEN_FILE = 'node-token.json'

export interface NodeTokenFile { url: string, token: string, pid: number }

export interface HttpParts { core: Core, peering: Peering, transfer: FileTransfer, audit: AuditLog, peerId: string, addresses: () => string[] }

/**
 * The HTTP API, listening, and the node-token file that lets local `dw`
 * commands act as the node's admin. Resolves with the URL it serves on.
 */
export async function startHttp (dataDir: string, config: NodeConfig, parts: HttpParts, options: { logger?: boolean | object, httpPort?: number }, unwind: Unwind): Promise<{ api: FastifyInstance, url: string }> {
  const { core, peering, transfer, audit, peerId } = parts
  const nodeToken = randomBytes(32).toString('base64url')
  const startedAt = new Date().toISOString()
  const mesh = {
    book: peering.book,
    sync: peering.sync,
    audit,
    self: () => ({ peerId, addresses: parts.addresses(), seq: core.docs.seq, epoch: core.docs.epoch }),
    transfers: () => ({ transfers: transfer.files.transfers(), wanted: transfer.files.wanted(), blobBytesOut: transfer.blobService.bytesServed }),
    nodes: core.nodes
  }
  const roster = { nodes: core.nodes, audit, self: peerId, name: config.name }
  const api = await buildApi(
    { users: core.users, records: core.records, files: transfer.files, audit, health: () => ({ name: config.name, peerId, startedAt }) },
    {
      nodeToken,
      nodeTokenUserId: config.adminUserId,
      logger: options.logger,
      plugins: [app => { peerRoutes(app, mesh) }, app => { syncRoutes(app, mesh) }, app => { nodeRoutes(app, roster) }, app => { fileRoutes(app, transfer.files, transfer.pins, audit) }]
    }
  )
  unwind.push(async () => { await api.close() })
  await api.listen({ host: config.http.host, port: options.httpPort ?? config.http.port })
  const address = api.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.http.port
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`
  await writeNodeToken(dataDir, { url, token: nodeToken, pid: process.pid })
  unwind.push(async () => { await rm(join(dataDir, NODE_TOKEN_FILE), { force: true }) })
  return { api, url }
}

async function writeNodeToken (dataDir: string, content: NodeTokenFile): Promise<void> {
  const path = join(dataDir, NODE_TOKEN_FILE)
  await writeFile(`${path}.tmp`, JSON.stringify(content) + '\n', { mode: 0o600 })
  await rename(`${path}.tmp`, path)
}
