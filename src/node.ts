import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rm, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { openDb, jsonSublevel, type Db } from './db.ts'
import { DocStore } from './crdt/doc-store.ts'
import { summarise } from './crdt/summary.ts'
import { FsBlobStore } from './blobs/fs-store.ts'
import { S3BlobStore } from './blobs/s3-store.ts'
import { resolveS3BlobStoreOptions } from './blobs/s3-config.ts'
import type { BlobStore } from './blobs/blob-store.ts'
import { SessionStore, type SessionRecord } from './auth/sessions.ts'
import { LoginThrottle } from './auth/login-throttle.ts'
import { Users } from './warehouse/users.ts'
import { Records } from './warehouse/records.ts'
import { Files } from './warehouse/files.ts'
import { Pins, type Pin } from './warehouse/pins.ts'
import { BlobRefs } from './crdt/blob-refs.ts'
import { BlobFetcher } from './blobs/transfer/fetcher.ts'
import { WantQueue } from './blobs/transfer/want-queue.ts'
import { BlobService } from './peer/blob-service.ts'
import { fileRoutes } from './api/routes/files.ts'
import { buildApi } from './api/server.ts'
import { loadOrCreateIdentity, peerIdOf } from './peer/identity.ts'
import { createPeerNode, type PeerNode } from './peer/libp2p.ts'
import { PeerBook, createConnectionGater, type PeerEntry, type PendingPeer } from './peer/peer-book.ts'
import { SyncService } from './peer/sync/service.ts'
import type { Checkpoint } from './peer/sync/types.ts'
import { AuditLog, type AuditEntry } from './audit.ts'
import { peerRoutes, syncRoutes } from './api/routes/peers.ts'
import { readConfig, writeConfig, type NodeConfig } from './config.ts'
import { DwError } from './errors.ts'

/** Where a running node tells local `dw` commands how to reach it (mode 0600). */
export const NODE_TOKEN_FILE = 'node-token.json'

export interface NodeTokenFile { url: string, token: string, pid: number }

export interface InitOptions {
  dataDir: string
  name?: string
  http?: { host: string, port: number }
  listen?: string[]
  adminPassword: string
  sync?: NodeConfig['sync']
  blobs?: NodeConfig['blobs']
}

export interface RunningNode {
  config: NodeConfig
  dataDir: string
  peerId: string
  /** The HTTP API's base URL, e.g. http://127.0.0.1:8080 */
  url: string
  docs: DocStore
  blobs: BlobStore
  users: Users
  records: Records
  files: Files
  pins: Pins
  api: FastifyInstance
  libp2p: PeerNode
  book: PeerBook
  sync: SyncService
  audit: AuditLog
  /** Multiaddrs other sites use to add this node (`.../p2p/<peerId>`). */
  addresses: () => string[]
  stop: () => Promise<void>
}

function dbPath (dataDir: string): string { return join(dataDir, 'db') }
function blobPath (dataDir: string): string { return join(dataDir, 'blobs') }

async function openDbClearly (dataDir: string): Promise<Db> {
  try {
    return await openDb(dbPath(dataDir))
  } catch (err: any) {
    if (err?.cause?.code === 'LEVEL_LOCKED' || /lock/i.test(String(err?.cause?.message ?? err?.message))) {
      throw new DwError('CONFIG_INVALID', `another dw node is already running on ${dataDir}`, { cause: err })
    }
    throw err
  }
}

interface Core { db: Db, docs: DocStore, blobs: BlobStore, refs: BlobRefs, users: Users, records: Records }

async function openBlobStore (dataDir: string, config: NodeConfig['blobs']): Promise<BlobStore> {
  if (config.type === 's3') return await S3BlobStore.open(resolveS3BlobStoreOptions(config))
  return await FsBlobStore.open(blobPath(dataDir))
}

async function openCore (dataDir: string, blobsConfig: NodeConfig['blobs']): Promise<Core> {
  // The blob store first: a wrong S3 setting should fail before LevelDB is locked.
  const blobs = await openBlobStore(dataDir, blobsConfig)
  const db = await openDbClearly(dataDir).catch(async (err: unknown) => { await blobs.close(); throw err })
  const refs = new BlobRefs(jsonSublevel<string>(db, 'blobrefs'))
  const docs = await DocStore.open(db, { summarise, indexes: [refs.index] })
  const sessions = new SessionStore(jsonSublevel<SessionRecord>(db, 'sessions'))
  const users = await Users.open(docs, sessions, new LoginThrottle())
  return { db, docs, blobs, refs, users, records: new Records(docs) }
}

/**
 * Creates a node's data directory: identity, config, database, blob store
 * and the first admin account. Refuses a directory that already holds a node.
 */
export async function initNode (options: InitOptions): Promise<{ peerId: string, config: NodeConfig, addresses: string[] }> {
  const { dataDir } = options
  await mkdir(dataDir, { recursive: true })
  const existing = await readdir(dataDir)
  if (existing.includes('config.json') || existing.includes('db')) {
    throw new DwError('ALREADY_INITIALISED', `${dataDir} already holds a dw node; pick another --data directory`)
  }
  const key = await loadOrCreateIdentity(dataDir)
  const peerId = peerIdOf(key)
  const blobs = options.blobs ?? { type: 'fs' }
  const core = await openCore(dataDir, blobs)
  try {
    const admin = await core.users.create(undefined, { username: 'admin', password: options.adminPassword, role: 'admin', displayName: 'Administrator' })
    const config: NodeConfig = {
      version: 1,
      name: options.name ?? `node-${peerId.slice(-6)}`,
      http: options.http ?? { host: '127.0.0.1', port: 8080 },
      listen: options.listen ?? ['/ip4/0.0.0.0/tcp/4001'],
      blobs,
      adminUserId: String(admin.id)
    }
    if (options.sync !== undefined) config.sync = options.sync
    await core.docs.flush()
    await writeConfig(dataDir, config)
    return { peerId, config, addresses: config.listen.map(a => `${a}/p2p/${peerId}`) }
  } finally {
    await core.blobs.close()
    await core.db.close()
  }
}

/** Starts a node from its data directory: stores, libp2p, sync, HTTP API. Resolves once it serves. */
export async function startNode (options: { dataDir: string, logger?: boolean | object, httpPort?: number }): Promise<RunningNode> {
  const { dataDir } = options
  const config = await readConfig(dataDir)
  const key = await loadOrCreateIdentity(dataDir)
  const peerId = peerIdOf(key)
  const core = await openCore(dataDir, config.blobs)
  const cleanup: Array<() => Promise<void>> = [async () => { await core.blobs.close() }, async () => { await core.db.close() }]
  const unwind = async (): Promise<void> => { for (const step of cleanup.splice(0).reverse()) await step().catch(() => {}) }
  try {
    const audit = new AuditLog(jsonSublevel<AuditEntry>(core.db, 'audit'))
    const book = await PeerBook.open({
      trusted: jsonSublevel<PeerEntry>(core.db, 'peers'),
      pending: jsonSublevel<PendingPeer>(core.db, 'peers-pending'),
      self: peerId
    })
    const refusedAt = new Map<string, number>()
    const libp2p = await createPeerNode({
      privateKey: key,
      listen: config.listen,
      gater: createConnectionGater(book, (refused) => {
        // One audit entry per peer per minute: a peer retrying in a loop must not flood the log.
        const id = refused.peerId.toString()
        if ((refusedAt.get(id) ?? 0) > Date.now() - 60_000) return
        refusedAt.set(id, Date.now())
        void audit.append({ type: 'peer.refused', peer: id, outcome: 'error' }).catch(() => {})
      })
    })
    cleanup.push(async () => { await libp2p.stop() })
    const addresses = (): string[] => libp2p.getMultiaddrs().map(ma => ma.toString())
    const sync = new SyncService({
      node: libp2p,
      store: core.docs,
      book,
      checkpoints: jsonSublevel<Checkpoint>(core.db, 'sync-checkpoints'),
      audit,
      redial: config.sync
    })
    await sync.start()
    cleanup.push(async () => { await sync.stop() })

    // Documents stored on a peer's word during a sync are checked in the
    // background, a hundred at a time; a peer whose word was wrong is audited.
    core.docs.on('mismatch', ({ key }) => { void audit.append({ type: 'sync.violation', outcome: 'error', details: { key, message: 'a document did not match the heads its sender gave' } }).catch(() => {}) })
    let verifying: Promise<unknown> | undefined
    const verifier = setInterval(() => {
      verifying ??= core.docs.verifySome(100).catch(() => 0).finally(() => { verifying = undefined })
    }, 500)
    cleanup.push(async () => { clearInterval(verifier); await verifying })

    const blobService = new BlobService({ node: libp2p, book, store: core.blobs, audit, isShared: async sha => await core.refs.isReferenced(sha) })
    await blobService.start()
    cleanup.push(async () => { await blobService.stop() })
    const fetcher = new BlobFetcher({
      store: core.blobs,
      partialDir: join(dataDir, 'blobs-partial'),
      transport: blobService.transport,
      perPeer: config.transfers?.perPeer,
      bytesPerSecond: config.transfers?.bytesPerSecond,
      onLie: (peer, sha256) => { void audit.append({ type: 'blob.mismatch', peer, outcome: 'error', details: { sha256 } }).catch(() => {}) }
    })
    const queue = new WantQueue(fetcher, core.blobs)
    queue.start()
    cleanup.push(async () => { queue.stop() })
    // A peer that appears may have what we are waiting for.
    const onConnect = (): void => { setTimeout(() => { queue.kick(true) }, 200) }
    libp2p.addEventListener('peer:connect', onConnect)
    cleanup.push(async () => { libp2p.removeEventListener('peer:connect', onConnect) })
    const files = new Files({ store: core.blobs, refs: core.refs, fetcher, queue })
    const pins = await Pins.open(jsonSublevel<Pin>(core.db, 'pins'), core.docs, queue)
    void pins.fetchMatching()

    const nodeToken = randomBytes(32).toString('base64url')
    const startedAt = new Date().toISOString()
    const mesh = {
      book,
      sync,
      audit,
      self: () => ({ peerId, addresses: addresses(), seq: core.docs.seq, epoch: core.docs.epoch }),
      transfers: () => ({ transfers: files.transfers(), wanted: files.wanted(), blobBytesOut: blobService.bytesServed })
    }
    const api = await buildApi(
      { users: core.users, records: core.records, files, audit, health: () => ({ name: config.name, peerId, startedAt }) },
      {
        nodeToken,
        nodeTokenUserId: config.adminUserId,
        logger: options.logger,
        plugins: [app => { peerRoutes(app, mesh) }, app => { syncRoutes(app, mesh) }, app => { fileRoutes(app, files, pins, audit) }]
      }
    )
    cleanup.push(async () => { await api.close() })
    await api.listen({ host: config.http.host, port: options.httpPort ?? config.http.port })
    const address = api.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : config.http.port
    const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host
    const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`
    await writeNodeToken(dataDir, { url, token: nodeToken, pid: process.pid })
    cleanup.push(async () => { await rm(join(dataDir, NODE_TOKEN_FILE), { force: true }) })
    cleanup.push(async () => { await core.docs.flush() })

    let stopping: Promise<void> | undefined
    const stop = async (): Promise<void> => {
      stopping ??= unwind()
      await stopping
    }
    return { config, dataDir, peerId, url, ...core, files, pins, api, libp2p, book, sync, audit, addresses, stop }
  } catch (err) {
    await unwind()
    throw err
  }
}

async function writeNodeToken (dataDir: string, content: NodeTokenFile): Promise<void> {
  const path = join(dataDir, NODE_TOKEN_FILE)
  await writeFile(`${path}.tmp`, JSON.stringify(content) + '\n', { mode: 0o600 })
  await rename(`${path}.tmp`, path)
}
