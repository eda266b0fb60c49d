import { join } from 'node:path'
import { jsonSublevel } from '../db.ts'
import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { BlobFetcher } from '../blobs/transfer/fetcher.ts'
import { WantQueue } from '../blobs/transfer/want-queue.ts'
import type { PeerNode } from '../peer/libp2p.ts'
import type { ProtocolHost } from '../peer/protocol-host.ts'
import { BlobProtocol } from './blob-protocol.ts'
import { Files } from '../warehouse/files.ts'
import { Pins, type Pin } from '../warehouse/pins.ts'
import type { Core } from './core.ts'
import type { Unwind } from './unwind.ts'

export interface FileTransfer { files: Files, pins: Pins, blobService: BlobProtocol }

/**
 * File bytes across the mesh: serving blobs to peers, fetching them on
 * demand, the queue of files waiting for a peer that has them, and pins
 * (fetched in the background as their records arrive).
 */
export async function startFileTransfer (core: Core, dataDir: string, config: NodeConfig, peering: { libp2p: PeerNode, host: ProtocolHost }, audit: AuditLog, unwind: Unwind): Promise<FileTransfer> {
  const { libp2p, host } = peering
  const blobService = new BlobProtocol({ host, store: core.blobs, isShared: async sha => await core.refs.isReferenced(sha) })
  await blobService.start()
  unwind.push(async () => { await blobService.stop() })
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
  unwind.push(async () => { queue.stop() })
  // A peer that appears may have what we are waiting for (once its
  // protocols are up); many appearing at once make one kick.
  let soon: NodeJS.Timeout | undefined
  const onConnect = (): void => {
    clearTimeout(soon)
    soon = setTimeout(() => { queue.kick(true) }, 200)
  }
  libp2p.addEventListener('peer:connect', onConnect)
  unwind.push(async () => { libp2p.removeEventListener('peer:connect', onConnect); clearTimeout(soon) })
  const files = new Files({ store: core.blobs, refs: core.refs, fetcher, queue })
  const pins = await Pins.open(jsonSublevel<Pin>(core.db, 'pins'), core.docs, queue)
  unwind.push(async () => { pins.stop() })
  void pins.fetchMatching()
  return { files, pins, blobService }
}
