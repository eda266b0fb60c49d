import type { FastifyInstance } from 'fastify'
import { jsonSublevel } from './db.ts'
import type { DocStore } from './crdt/doc-store.ts'
import type { RecordSummary } from './crdt/summary.ts'
import type { BlobStore } from './blobs/blob-store.ts'
import type { Users } from './warehouse/users.ts'
import type { Records } from './warehouse/records.ts'
import type { Nodes } from './warehouse/nodes.ts'
import type { TrustGate } from './trust/gate.ts'
import type { Files } from './warehouse/files.ts'
import type { Pins } from './warehouse/pins.ts'
import { loadOrCreateIdentity, peerIdOf } from './peer/identity.ts'
import type { PeerNode } from './peer/libp2p.ts'
import type { PeerBook } from './peer/peer-book.ts'
import type { SyncService } from './peer/sync/service.ts'
import type { ProtocolHost } from './peer/protocol-host.ts'
import { AuditLog, type AuditEntry } from './audit.ts'
import { readConfig, writeConfig, type NodeConfig, type TlsFiles } from './config.ts'
import { DwError } from './errors.ts'
import { openCore } from './start/core.ts'
import { startFileTransfer } from './start/file-transfer.ts'
import { startHttp } from './start/http.ts'
import { startPeering } from './start/peering.ts'
import { addConfigPeers, resolveAnnounce, resolveConfigPeers, type AppliedPeer } from './start/config-peers.ts'
import { startGuard, type Guard } from './start/guard.ts'
import { startBackups } from './start/backups.ts'
import { startFleet, type Fleet } from './start/fleet.ts'
import { openMetrics, startMetrics } from './start/metrics.ts'
import type { NodeMetrics } from './metrics/registry.ts'
import type { Backups } from './backup/backups.ts'
import { Unwind } from './start/unwind.ts'
import { closeDataDir, makeDataDir, refuseInitialised, restrictTree, warnOnStderr } from './start/data-dir.ts'
import { incarnationOf, renewalWarning, stampInstance } from './start/instance.ts'

export { NODE_TOKEN_FILE, type NodeTokenFile } from './start/http.ts'

export interface InitOptions {
  dataDir: string
  name?: string
  http?: { host: string, port: number }
  listen?: string[]
  adminPassword: string
  sync?: NodeConfig['sync']
  /** This node's part in keeping copies of files (docs/files.md, "Copies"). */
  files?: NodeConfig['files']
  blobs?: NodeConfig['blobs']
  /** Login limits and the password cost (config.json `login`); the admin's password is hashed at that cost. */
  login?: NodeConfig['login']
  /**
   * Join an existing mesh instead of founding one: the node takes the mesh
   * of the first peer that brings it a roster, and writes once a full node
   * of that mesh has added it.
   */
  join?: boolean
}

export interface RunningNode {
  config: NodeConfig
  dataDir: string
  peerId: string
  /** The HTTP API's base URL, e.g. http://127.0.0.1:8080 */
  url: string
  docs: DocStore<RecordSummary>
  blobs: BlobStore
  users: Users
  records: Records
  trust: TrustGate
  nodes: Nodes
  files: Files
  pins: Pins
  api: FastifyInstance
  libp2p: PeerNode
  book: PeerBook
  sync: SyncService
  /** Where every protocol's streams pass the trust gate. */
  host: ProtocolHost
  /** The document checker, the quarantine, the engine watch and the readiness check. */
  guard: Guard
  audit: AuditLog
  /** Backups on request and on schedule. */
  backups: Backups
  /** Node statuses through the mesh, and the fleet view over them (`GET /fleet`). */
  fleet: Fleet
  /** Prometheus metrics: `GET /metrics`, and `metrics.listenUrl` when config.json asks for a listener of their own. */
  metrics: NodeMetrics
  /** Multiaddrs other sites use to add this node (`.../p2p/<peerId>`). */
  addresses: () => string[]
  stop: () => Promise<void>
}

/**
 * Creates a node's data directory: identity, config, database, blob store
 * and the first admin account. Refuses a directory that already holds a node.
 */
export async function initNode (options: InitOptions): Promise<{ peerId: string, config: NodeConfig, addresses: string[], meshId: string | undefined }> {
  const { dataDir } = options
  await makeDataDir(dataDir)
  await refuseInitialised(dataDir)
  // Closed before anything is written: a file opened by another user now could be read later.
  await closeDataDir(dataDir, warnOnStderr)
  const key = await loadOrCreateIdentity(dataDir)
  const peerId = peerIdOf(key)
  const blobs = options.blobs ?? { type: 'fs' }
  const core = await openCore(dataDir, blobs, { key, peerId }, options.login)
  try {
    const admin = await core.users.create(undefined, { username: 'admin', password: options.adminPassword, role: 'admin', displayName: 'Administrator' })
    const name = options.name ?? `node-${peerId.slice(-6)}`
    const meshId = options.join === true ? undefined : (await core.nodes.found(name)).meshId
    const config: NodeConfig = {
      version: 1,
      name,
      http: options.http ?? { host: '127.0.0.1', port: 8080 },
      listen: options.listen ?? ['/ip4/0.0.0.0/tcp/4001'],
      blobs,
      adminUserId: String(admin.id)
    }
    if (options.sync !== undefined) config.sync = options.sync
    if (options.files !== undefined) config.files = options.files
    if (options.login !== undefined) config.login = options.login
    await core.docs.flush()
    await writeConfig(dataDir, config)
    await stampInstance(dataDir)
    await restrictTree(dataDir)
    return { peerId, config, addresses: config.listen.map(a => `${a}/p2p/${peerId}`), meshId }
  } finally {
    await core.blobs.close()
    await core.db.close()
  }
}

export interface StartOptions {
  dataDir: string
  logger?: boolean | object
  httpPort?: number
  /** Where the HTTP API listens, instead of config.json's `http`. */
  http?: { host: string, port: number }
  /** Serve HTTPS with these files, instead of config.json's `http.tls`. */
  tls?: TlsFiles
  /** Addresses to announce besides config.json's `announce`, for this run (`dw start --announce`). */
  announce?: string[]
  /** Peers to add besides config.json's `peers`: multiaddrs separated by commas or whitespace (default: `DW_PEERS`). */
  peersEnv?: string
  /** Problems worth an admin's attention that do not stop the node (default: stderr). */
  warn?: (message: string) => void
  /** The Automerge engine in this process failed (`dw start` exits so its supervisor restarts it); default: a line on stderr, and /readyz answers 503. */
  onEngineFailure?: () => void
}

/** Starts a node from its data directory: stores, libp2p, sync, file transfer, HTTP API. Resolves once it serves. */
export async function startNode (options: StartOptions): Promise<RunningNode> {
  const { dataDir } = options
  const config = await readConfig(dataDir)
  await closeDataDir(dataDir, options.warn ?? warnOnStderr)
  const key = await loadOrCreateIdentity(dataDir)
  const peerId = peerIdOf(key)
  // Checked before anything opens: a bad entry stops the start and names itself.
  const wantedPeers = resolveConfigPeers(config.peers, options.peersEnv ?? process.env.DW_PEERS, peerId)
  const announce = resolveAnnounce(config.announce, options.announce ?? [], peerId)
  const incarnation = await incarnationOf(dataDir)
  const core = await openCore(dataDir, config.blobs, { key, peerId }, config.login, { renewEpoch: incarnation.renew })
  const unwind = new Unwind()
  unwind.push(async () => { await core.blobs.close() })
  unwind.push(async () => { await core.db.close() })
  try {
    unwind.push(async () => { core.users.stop() })
    const adminUserId = await core.users.migrateLocalAdmin(config.adminUserId)
    if (adminUserId !== config.adminUserId) {
      config.adminUserId = adminUserId
      await writeConfig(dataDir, config)
    }
    const audit = new AuditLog(jsonSublevel<AuditEntry>(core.db, 'audit'))
    const metrics = openMetrics(config, audit, unwind)
    if (incarnation.renew) {
      (options.warn ?? warnOnStderr)(renewalWarning(incarnation))
      await audit.append({ type: 'node.new-epoch', outcome: 'ok', details: { why: incarnation.why, detail: incarnation.detail, epoch: core.docs.epoch } })
    }
    await stampInstance(dataDir)
    const guard = startGuard(core, dataDir, config, audit, unwind, options.onEngineFailure ?? (() => {
      process.stderr.write('dw: the Automerge engine in this process has failed; /readyz answers 503 until the node restarts\n')
    }))
    // --announce holds for this run only: config.json is written back as read.
    const peering = await startPeering(core, { key, peerId }, announce.length === 0 ? config : { ...config, announce }, audit, unwind)
    await addConfigPeers({
      book: peering.book,
      nodes: core.nodes,
      audit,
      applied: jsonSublevel<AppliedPeer>(core.db, 'config-peers'),
      admin: { userId: config.adminUserId, username: 'admin', role: 'admin' },
      self: peerId,
      added: peer => { peering.sync.peerAdded(peer) },
      warn: options.warn ?? warnOnStderr
    }, wantedPeers)
    const addresses = (): string[] => peering.libp2p.getMultiaddrs().map(ma => ma.toString())
    const transfer = await startFileTransfer(core, dataDir, config, peering, audit, unwind)
    const backups = await startBackups(core, dataDir, config, peerId, transfer, audit, unwind)
    const fleet = await startFleet(core, dataDir, config, { identity: { key, peerId }, peering, transfer, backups, guard, audit }, unwind)
    const { api, url } = await startHttp(dataDir, config, { core, peering, transfer, audit, peerId, addresses, guard, backups, metrics, fleet }, options, unwind)
    await startMetrics(metrics, { dataDir, config, peerId, core, peering, transfer, guard }, options.warn ?? warnOnStderr, unwind)
    unwind.push(async () => { await core.docs.flush() })

    let stopping: Promise<void> | undefined
    const stop = async (): Promise<void> => {
      stopping ??= unwind.run()
      await stopping
    }
    const { files, pins } = transfer
    const { libp2p, book, sync, host } = peering
    return { config, dataDir, peerId, url, ...core, files, pins, api, libp2p, book, sync, host, guard, audit, backups, metrics, fleet, addresses, stop }
  } catch (err) {
    await unwind.run()
    throw err
  }
}
