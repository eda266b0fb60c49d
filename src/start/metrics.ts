import { isIP } from 'node:net'
import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { resolveMetricsConfig } from '../metrics/config.ts'
import { listenForScrapes } from '../metrics/listener.ts'
import { NodeMetrics } from '../metrics/registry.ts'
import type { Core } from './core.ts'
import type { FileTransfer } from './file-transfer.ts'
import type { Guard } from './guard.ts'
import type { Peering } from './peering.ts'
import type { Unwind } from './unwind.ts'

/**
 * The node's metrics, opened right after its audit log: a bad `metrics`
 * in config.json stops the start before anything listens, and audited
 * events are counted from the start.
 */
export function openMetrics (config: NodeConfig, audit: AuditLog, unwind: Unwind): NodeMetrics {
  const metrics = new NodeMetrics(resolveMetricsConfig(config.metrics), audit)
  unwind.push(async () => { metrics.close() })
  return metrics
}

export interface MetricsParts { dataDir: string, config: NodeConfig, peerId: string, core: Core, peering: Peering, transfer: FileTransfer, guard: Guard }

function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/**
 * Once the node's parts run: the series read from them at each scrape,
 * and the unauthenticated listener if `metrics.listen` asks for one.
 */
export async function startMetrics (metrics: NodeMetrics, parts: MetricsParts, warn: (message: string) => void, unwind: Unwind): Promise<void> {
  const { core, peering, transfer, guard } = parts
  metrics.watch({
    self: { name: parts.config.name, peerId: parts.peerId },
    dataDir: parts.dataDir,
    readiness: async () => await guard.readiness.check(),
    scan: prefix => core.docs.scan(prefix),
    feedHead: () => core.docs.seq,
    parkedChanges: () => core.docs.parkedCount,
    quarantined: async () => await guard.quarantine.count(),
    blobs: () => core.blobs.list(),
    transfers: () => transfer.files.transfers(),
    waiting: () => transfer.files.wanted().length,
    bytesServed: () => transfer.blobService.bytesServed,
    belowCopyTarget: () => transfer.copier.status().belowTarget
  }, {
    status: () => peering.sync.status(),
    addedAt: peerId => peering.book.get(peerId)?.addedAt,
    isPeer: peerId => peering.book.isTrusted(peerId)
  })
  const address = metrics.settings.listen
  if (address === undefined) return
  if (!isLoopback(address.host)) {
    warn(`metrics listen on ${address.host}:${address.port} without authentication, reachable from other hosts: peer ids, names and sizes are readable there. Keep "metrics.listen" on 127.0.0.1 or a private network, or use "metrics.token" on the API instead`)
  }
  const listener = await listenForScrapes(address, metrics)
  metrics.listenUrl = listener.url
  unwind.push(async () => { await listener.close() })
}
