import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import tar from 'tar-stream'
import type { Db } from '../db.ts'
import type { BlobInfo, BlobStore } from '../blobs/blob-store.ts'
import type { GcGuard } from '../blobs/gc-guard.ts'
import { CONFIG_FILE } from '../config.ts'
import { IDENTITY_FILE } from '../peer/identity.ts'
import { DwError } from '../errors.ts'
import { BLOB_PREFIX, CONFIG, DB_CHUNK_BYTES, FORMAT, IDENTITY, MANIFEST, SUMMARY, dbChunkName, frameEntry, type BackupManifest, type BackupSummary } from './archive.ts'

/** What a backup reads from a running node. */
export interface BackupSource {
  dataDir: string
  db: Db
  blobs: BlobStore
  /** Held for the whole backup, so garbage collection cannot take a blob the snapshot references. */
  guard: GcGuard
  feed: () => { epoch: string, seq: number }
  peerId: string
  name: string
  blobStore: 'fs' | 's3'
}

export interface RunningBackup {
  manifest: BackupManifest
  /** The archive's bytes, roughly: for a progress bar, not a promise. */
  estimate: number
  /** The tar archive. Destroying it (a client gone) ends the backup. */
  stream: AsyncIterable<Buffer> & { destroy: (err?: Error) => void }
  /** Resolves when the whole archive has been handed to the stream's reader. */
  done: Promise<BackupSummary>
}

/**
 * Starts a backup of a running node: one LevelDB snapshot (an iterator
 * reads the store as it was when it was created, whatever is written
 * meanwhile), the blob list taken right after it under the GC guard, so
 * every blob a snapshot record names is listed and stays until its bytes
 * are out. Writes go on while it runs; they are simply not in this backup.
 */
export async function startBackup (source: BackupSource, options: { includeFiles: boolean }): Promise<RunningBackup> {
  const [config, identity] = await Promise.all([readFile(join(source.dataDir, CONFIG_FILE)), readFile(join(source.dataDir, IDENTITY_FILE))])
  return await new Promise<RunningBackup>((resolve, reject) => {
    let started = false
    const done = source.guard.hold(async () => {
      const iterator = source.db.iterator({ keyEncoding: 'view', valueEncoding: 'view' })
      try {
        const feed = source.feed()
        const blobs: BlobInfo[] = []
        for await (const info of source.blobs.list()) blobs.push({ sha256: info.sha256, size: info.size })
        blobs.sort((a, b) => a.sha256 < b.sha256 ? -1 : 1)
        const manifest: BackupManifest = {
          format: FORMAT,
          createdAt: new Date().toISOString(),
          peerId: source.peerId,
          name: source.name,
          epoch: feed.epoch,
          seq: feed.seq,
          blobStore: source.blobStore,
          filesIncluded: options.includeFiles,
          blobs
        }
        const dbBytes = await approximateDbSize(source.db)
        const fileBytes = options.includeFiles ? blobs.reduce((n, b) => n + b.size, 0) : 0
        const pack = tar.pack()
        const closed = new AbortController()
        pack.on('close', () => { closed.abort() })
        started = true
        resolve({ manifest, estimate: dbBytes + fileBytes, stream: pack as unknown as RunningBackup['stream'], done })
        return await writeArchive(pack, { manifest, config, identity, iterator, blobs: source.blobs, includeFiles: options.includeFiles, signal: closed.signal })
      } finally {
        await iterator.close()
      }
    })
    done.catch((err: unknown) => { if (!started) reject(err) })
  })
}

interface ArchiveParts {
  manifest: BackupManifest
  config: Buffer
  identity: Buffer
  iterator: ReturnType<Db['iterator']>
  blobs: BlobStore
  includeFiles: boolean
  signal: AbortSignal
}

async function writeArchive (pack: tar.Pack, parts: ArchiveParts): Promise<BackupSummary> {
  const { signal } = parts
  const summary: BackupSummary = { dbEntries: 0, dbChunks: 0, blobs: 0, blobBytes: 0 }
  await bufferEntry(pack, MANIFEST, Buffer.from(JSON.stringify(parts.manifest)), signal)
  await bufferEntry(pack, CONFIG, parts.config, signal)
  await bufferEntry(pack, IDENTITY, parts.identity, signal)

  let frames: Buffer[] = []
  let size = 0
  const flush = async (): Promise<void> => {
    if (frames.length === 0) return
    summary.dbChunks += 1
    await bufferEntry(pack, dbChunkName(summary.dbChunks), Buffer.concat(frames, size), signal)
    frames = []
    size = 0
  }
  for (;;) {
    const entries = await parts.iterator.nextv(1000)
    if (entries.length === 0) break
    for (const [key, value] of entries) {
      const frame = frameEntry(key as unknown as Uint8Array, value as unknown as Uint8Array)
      frames.push(frame)
      size += frame.length
      summary.dbEntries += 1
    }
    if (size >= DB_CHUNK_BYTES) await flush()
  }
  await flush()

  if (parts.includeFiles) {
    for (const blob of parts.manifest.blobs) {
      const bytes = await parts.blobs.get(blob.sha256)
      await streamEntry(pack, BLOB_PREFIX + blob.sha256, blob.size, bytes, signal)
      summary.blobs += 1
      summary.blobBytes += blob.size
    }
  }
  await bufferEntry(pack, SUMMARY, Buffer.from(JSON.stringify(summary)), signal)
  pack.finalize()
  return summary
}

function gone (): Error {
  return new Error('the backup was abandoned: its reader went away')
}

/** classic-level can say how much disk the store takes (the `level` type does not declare it). */
async function approximateDbSize (db: Db): Promise<number> {
  const sized = db as unknown as { approximateSize?: (start: string, end: string) => Promise<number> }
  return await sized.approximateSize?.('\u0000', '\uffff').catch(() => 0) ?? 0
}

async function bufferEntry (pack: tar.Pack, name: string, data: Buffer, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw gone()
  // The callback fires once the reader has taken the bytes: that is the backpressure.
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { reject(gone()) }
    signal.addEventListener('abort', onAbort, { once: true })
    pack.entry({ name, size: data.length, mode: 0o600 }, data, err => {
      signal.removeEventListener('abort', onAbort)
      if (err != null) reject(err)
      else resolve()
    })
  })
}

async function streamEntry (pack: tar.Pack, name: string, size: number, source: Readable, signal: AbortSignal): Promise<void> {
  let settle!: (err?: Error | null) => void
  const finished = new Promise<void>((resolve, reject) => { settle = (err?: Error | null) => { if (err != null) reject(err); else resolve() } })
  const sink = pack.entry({ name, size, mode: 0o600 }, err => { settle(err) })
  const onAbort = (): void => { source.destroy(); settle(gone()) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    let written = 0
    for await (const chunk of source) {
      if (signal.aborted) throw gone()
      written += (chunk as Buffer).length
      if (written > size) throw new DwError('INTEGRITY_MISMATCH', `blob ${name} grew while it was backed up`)
      if (!sink.write(chunk)) await Promise.race([new Promise<void>(resolve => sink.once('drain', resolve)), finished])
    }
    if (written !== size) throw new DwError('INTEGRITY_MISMATCH', `blob ${name} has ${written} bytes, not the ${size} the store listed`)
    // (Node's Writable#end takes no argument; the declared type wants one.)
    const ending = sink as unknown as { end: () => void }
    ending.end()
    await finished
  } finally {
    signal.removeEventListener('abort', onAbort)
    source.destroy()
  }
}
