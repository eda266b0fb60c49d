import type { FastifyInstance } from 'fastify'
import { collectDefaultMetrics, Registry } from 'prom-client'
import type { AuditLog } from '../audit.ts'
import { countAuditedEvents } from './audit-counters.ts'
import type { MetricsSettings } from './config.ts'
import { timeRequests } from './http.ts'
import { registerNodeGauges, type NodeSource } from './node-gauges.ts'
import { registerPeerGauges, type PeerSource } from './peer-gauges.ts'

/**
 * One node's metrics in the Prometheus text format. A registry of its own,
 * never prom-client's global one: tests run several nodes in one process,
 * and each must report only itself. Most series are read from the node's
 * parts when scraped; counters follow the audit log and the HTTP API.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly settings: MetricsSettings
  /** Where the separate listener serves, once it does (`metrics.listen`). */
  listenUrl: string | undefined
  #peers: PeerSource | undefined
  #isPeer: (peerId: string) => boolean = () => false
  readonly #unsubscribe: () => void

  constructor (settings: MetricsSettings, audit: AuditLog) {
    this.settings = settings
    // Node's process metrics: CPU, memory, heap, event-loop lag, handles, GC.
    collectDefaultMetrics({ register: this.registry })
    this.#unsubscribe = countAuditedEvents(audit, this.registry, {
      ids: () => this.#peers?.status().map(s => s.peerId) ?? [],
      label: peer => peer !== undefined && this.#isPeer(peer) ? peer : 'other'
    })
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** The exposition text, every gauge read now. */
  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  /** Times the API's requests; call before its routes are added. */
  timeRequests (app: FastifyInstance): void {
    timeRequests(app, this.registry)
  }

  /** The series read from the running node's parts at each scrape. */
  watch (node: NodeSource, peers: PeerSource & { isPeer: (peerId: string) => boolean }): void {
    this.#peers = peers
    this.#isPeer = peers.isPeer
    registerNodeGauges(this.registry, node)
    registerPeerGauges(this.registry, peers)
  }

  close (): void {
    this.#unsubscribe()
  }
}
