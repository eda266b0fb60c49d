import { statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { jsonSublevel } from '../db.ts'
import type { AuditLog } from '../audit.ts'
import { resolveFilesConfig, type NodeConfig } from '../config.ts'
import { BlobFetcher } from '../blobs/transfer/fetcher.ts'
import { WantQueue } from '../blobs/transfer/want-queue.ts'
import type { PeerNode } from '../peer/libp2p.ts'
import type { ProtocolHost } from '../peer/protocol-host.ts'
import type { PeerBook } from '../peer/peer-book.ts'
import type { LinkRates } from '../peer/link-rates.ts'
import type { LinkPriority } from '../peer/link-priority.ts'
import { backgroundRefusal } from '../peer/link-profile.ts'
import { BlobProtocol } from './blob-protocol.ts'
import { Files } from '../warehouse/files.ts'
import { Pins, type Pin } from '../warehouse/pins.ts'
import { Holdings } from '../warehouse/holdings.ts'
import { Copier } from '../warehouse/copies.ts'
import { copyTarget } from '../warehouse/copy-policy.ts'
import type { Core } from './core.ts'
import type { Unwind } from './unwind.ts'

export interface FileTransfer { files: Files, pins: Pins, blobService: BlobProtocol, holdings: Holdings, copier: Copier }

/**
 * File bytes across the mesh: serving blobs to peers, fetching them on
 * demand, the queue of files waiting for a peer that has them, and pins
 * (fetched in the background as their records arrive).
 */
export async function startFileTransfer (core: Core, dataDir: string, config: NodeConfig, peering: { libp2p: PeerNode, host: ProtocolHost, book: PeerBook, rates: LinkRates, priority: LinkPriority }, audit: AuditLog, unwind: Unwind): Promise<FileTransfer> {
  const { libp2p, host, book, rates, priority } = peering
  const blobService = new BlobProtocol({ host, store: core.blobs, isShared: async sha => await core.refs.isReferenced(sha), priority })
  await blobService.start()
  unwind.push(async () => { await blobService.stop() })
  const fetcher = new BlobFetcher({
    store: core.blobs,
    partialDir: join(dataDir, 'blobs-partial'),
    transport: blobService.transport,
    perPeer: config.transfers?.perPeer,
    bytesPerSecond: config.transfers?.bytesPerSecond,
    onLie: (peer, sha256) => { void audit.append({ type: 'blob.mismatch', peer, outcome: 'error', details: { sha256 } }).catch(() => {}) },
    receivePacer: peer => rates.pacer(peer, 'receive'),
    backgroundRefusal: peer => backgroundRefusal(book.link(peer), new Date())
  })
  const queue = new WantQueue(fetcher, core.blobs)
  queue.start()
  unwind.push(async () => { queue.stop() })
  // A peer that appears may have what we are waiting for (once its
  // protocols are up); many appearing at once make one kick.
  let soon: NodeJS.Timeout | undefined
  const onConnect = (): void => {
    clearTimeout(soon)
    soon = setTimeout(() => { queue.kick(true) }, 200)
  }
  libp2p.addEventListener('peer:connect', onConnect)
  // A link profile that changed may let a held-back file come now.
  book.on('link', onConnect)
  unwind.push(async () => { libp2p.removeEventListener('peer:connect', onConnect); book.off('link', onConnect); clearTimeout(soon) })
  const settings = resolveFilesConfig(config.files)
  // Background work fails again and again while its cause lasts (a full disk): one line a minute at most.
  let warnedAt = 0
  const warn = (what: string) => (err: unknown): void => {
    if (Date.now() - warnedAt < 60_000) return
    warnedAt = Date.now()
    process.stderr.write(`dw: ${what}: ${(err as Error)?.message ?? String(err)}\n`)
  }
  // Which files this node holds, published for the mesh in its own node document.
  const holdings = new Holdings({
    self: core.trust.self,
    author: core.trust.localAdminId,
    docs: core.docs,
    store: core.blobs,
    refs: core.refs,
    mayPublish: async () => ['full', 'contributor', 'read-only'].includes(await core.nodes.standing(core.trust.self)),
    rosterKey: () => core.trust.rosterKey,
    publishMs: settings.publishMs,
    onError: warn('publishing this node\'s holdings')
  })
  await holdings.start()
  unwind.push(async () => { await holdings.stop() })
  // A fetch that ends (from a client's download, a pin or a copy) may have brought a blob.
  const onProgress = (sha: string): void => { if (fetcher.running(sha) === undefined) holdings.mark(sha) }
  fetcher.on('progress', onProgress)
  unwind.push(async () => { fetcher.off('progress', onProgress) })

  const members = async (): Promise<string[]> => (await core.nodes.list()).filter(e => e.role !== 'revoked').map(e => e.peerId)
  const files = new Files({
    store: core.blobs,
    refs: core.refs,
    fetcher,
    queue,
    onHeld: hashes => { for (const sha of hashes) holdings.mark(sha) },
    copies: {
      self: core.trust.self,
      targetOf: async record => copyTarget(await core.nodes.copySettings(), record),
      holders: async sha => {
        const listed = holdings.holders(sha)
        if (listed.length === 0) return []
        const ok = new Set(await members())
        return listed.filter(p => ok.has(p))
      },
      names: async () => new Map((await core.nodes.list()).map(e => [e.peerId, e.name]))
    }
  })
  const pins = await Pins.open(jsonSublevel<Pin>(core.db, 'pins'), core.docs, queue)
  unwind.push(async () => { pins.stop() })
  void pins.fetchMatching()

  // Files below their copy target are fetched in the background by the sites chosen for them.
  const copier = new Copier({
    self: core.trust.self,
    docs: core.docs,
    mesh: async () => ({ targets: await core.nodes.copySettings(), members: await members() }),
    holders: sha => holdings.holders(sha),
    present: async sha => await files.present(sha),
    connectedPeers: () => blobService.transport.connectedPeers(),
    fetch: async (sha, size) => { await fetcher.fetch(sha, { ...(size > 0 ? { size } : {}), background: true }) },
    fetched: async (sha, records) => {
      await core.refs.vouch(sha, records)
      holdings.mark(sha)
    },
    room: async size => {
      // Partial downloads land in the data directory, and there the filesystem store keeps blobs.
      const fs = await statfs(dataDir).catch(() => undefined)
      if (fs === undefined) return true
      const free = fs.bavail * fs.bsize
      const reserve = Math.max(settings.reserveBytes, fs.blocks * fs.bsize * settings.reservePercent / 100)
      return free - size >= reserve
    },
    copy: settings.copy,
    scanMs: settings.scanMs,
    graceMs: settings.graceMs,
    onError: warn('copying files below their target')
  })
  copier.start()
  unwind.push(async () => { await copier.stop() })
  return { files, pins, blobService, holdings, copier }
}
