import { randomBytes } from 'node:crypto'
import { rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { AuditLog } from '../audit.ts'
import type { NodeConfig, TlsFiles } from '../config.ts'
import { fileRoutes } from '../api/routes/files.ts'
import { peerRoutes, syncRoutes } from '../api/routes/peers.ts'
import { nodeRoutes } from '../api/routes/nodes.ts'
import { guardRoutes } from '../api/routes/guard.ts'
import { backupRoutes } from '../api/routes/backup.ts'
import { fleetRoutes } from '../api/routes/fleet.ts'
import type { Fleet } from './fleet.ts'
import { metricsRoutes } from '../api/routes/metrics.ts'
import type { NodeMetrics } from '../metrics/registry.ts'
import type { Backups } from '../backup/backups.ts'
import type { Guard } from './guard.ts'
import { buildApi } from '../api/server.ts'
import type { Core } from './core.ts'
import type { FileTransfer } from './file-transfer.ts'
import type { Peering } from './peering.ts'
import type { Unwind } from './unwind.ts'
import { loadTls } from './tls.ts'
import { warnOnStderr } from './data-dir.ts'
import { SiteAdmins } from '../warehouse/site-admins.ts'

/** Where a running node tells local `dw` commands how to reach it (mode 0600). */
export const NODE_TOKEN_FILE = 'node-token.json'

export interface NodeTokenFile {
  url: string
  token: string
  pid: number
  /**
   * With HTTPS, the certificate (PEM) the node serves. Local `dw` commands
   * trust exactly this certificate: whoever can read this file holds the
   * admin token already, so pinning from it adds no new trust.
   */
  cert?: string
}

export interface HttpOptions {
  logger?: boolean | object
  httpPort?: number
  http?: { host: string, port: number }
  tls?: TlsFiles
  warn?: (message: string) => void
}

export interface HttpParts { core: Core, peering: Peering, transfer: FileTransfer, audit: AuditLog, peerId: string, addresses: () => string[], guard: Guard, backups: Backups, metrics: NodeMetrics, fleet?: Fleet }

/**
 * The HTTP API (HTTPS when a certificate is configured), listening, and the
 * node-token file that lets local `dw` commands act as the node's admin.
 * Resolves with the URL it serves on.
 */
export async function startHttp (dataDir: string, config: NodeConfig, parts: HttpParts, options: HttpOptions, unwind: Unwind): Promise<{ api: FastifyInstance, url: string }> {
  const { core, peering, transfer, audit, peerId } = parts
  const http = options.http ?? config.http
  const tlsFiles = options.tls ?? config.http.tls
  const tls = tlsFiles === undefined ? undefined : await loadTls(tlsFiles, dataDir, options.warn ?? warnOnStderr)
  const nodeToken = randomBytes(32).toString('base64url')
  const startedAt = new Date().toISOString()
  const mesh = {
    book: peering.book,
    sync: peering.sync,
    audit,
    self: () => ({ peerId, addresses: parts.addresses(), seq: core.docs.seq, epoch: core.docs.epoch }),
    transfers: () => ({ transfers: transfer.files.transfers(), wanted: transfer.files.wanted(), blobBytesOut: transfer.blobService.bytesServed, copies: transfer.copier.status() }),
    nodes: core.nodes,
    refusal: (peer: string) => peering.host.refusal(peer)
  }
  const roster = { nodes: core.nodes, audit, self: peerId, name: config.name }
  const api = await buildApi(
    { users: core.users, records: core.records, files: transfer.files, audit, health: () => ({ name: config.name, peerId, startedAt }), siteAdmins: new SiteAdmins(async () => await core.nodes.list(), peerId) },
    {
      nodeToken,
      nodeTokenUserId: config.adminUserId,
      logger: options.logger,
      https: tls,
      instrument: app => { parts.metrics.timeRequests(app) },
      plugins: [app => { peerRoutes(app, mesh) }, app => { syncRoutes(app, mesh) }, app => { nodeRoutes(app, roster) }, app => { fileRoutes(app, transfer.files, transfer.pins, audit) }, app => { guardRoutes(app, parts.guard, audit) }, app => { backupRoutes(app, parts.backups, config.name) }, app => { if (parts.fleet !== undefined) fleetRoutes(app, parts.fleet) }, app => { metricsRoutes(app, { contentType: parts.metrics.contentType, text: async () => await parts.metrics.text(), token: parts.metrics.settings.token }) }]
    }
  )
  unwind.push(async () => { await api.close() })
  await api.listen({ host: http.host, port: options.httpPort ?? http.port })
  const address = api.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : http.port
  const host = http.host.includes(':') ? `[${http.host}]` : http.host
  const url = `${tls === undefined ? 'http' : 'https'}://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`
  await writeNodeToken(dataDir, { url, token: nodeToken, pid: process.pid, ...(tls === undefined ? {} : { cert: tls.cert }) })
  unwind.push(async () => { await rm(join(dataDir, NODE_TOKEN_FILE), { force: true }) })
  return { api, url }
}

async function writeNodeToken (dataDir: string, content: NodeTokenFile): Promise<void> {
  const path = join(dataDir, NODE_TOKEN_FILE)
  await writeFile(`${path}.tmp`, JSON.stringify(content) + '\n', { mode: 0o600 })
  await rename(`${path}.tmp`, path)
}
