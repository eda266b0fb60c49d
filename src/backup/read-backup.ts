import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'
import tar from 'tar-stream'
import type { Db } from '../db.ts'
import type { BlobStore } from '../blobs/blob-store.ts'
import { DocStore } from '../crdt/doc-store.ts'
import { summarise } from '../crdt/summary.ts'
import { DwError } from '../errors.ts'
import { BLOB_PREFIX, CONFIG, DB_CHUNK_BYTES, DB_PREFIX, FORMAT, IDENTITY, MANIFEST, SUMMARY, dbChunkName, unframeEntries, type BackupManifest, type BackupSummary } from './archive.ts'

/** Where what an archive holds goes. */
export interface ReadTargets {
  /** A fresh database that takes every LevelDB entry. */
  db: Db
  /** Opens the store blob bytes go to, given the archive's config; without it they are only hashed and checked. */
  openBlobs?: (config: Buffer) => Promise<BlobStore>
  /** Archive bytes read so far (for a progress bar). */
  onBytes?: (n: number) => void
}

export interface ReadResult {
  manifest: BackupManifest
  summary: BackupSummary
  config: Buffer
  identity: Buffer
}

/** Small entries are read whole; anything bigger than this is not from a backup. */
const SMALL_ENTRY_MAX = 1024 * 1024
/** A db chunk is cut at DB_CHUNK_BYTES plus its last batch of entries. */
const DB_CHUNK_MAX = 16 * DB_CHUNK_BYTES

function damaged (path: string, reason: string): DwError {
  return new DwError('INVALID_INPUT', `${path} is not a complete dw backup: ${reason}`)
}

async function readWhole (entry: Readable, max: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of entry) {
    size += (chunk as Buffer).length
    if (size > max) throw new Error(`${what} is larger than a backup writes`)
    parts.push(chunk as Buffer)
  }
  return Buffer.concat(parts, size)
}

/**
 * Reads a backup archive entry by entry, as written (src/backup/archive.ts),
 * checking as it goes: the manifest first, every database chunk in order,
 * every blob named in the manifest with the size it lists and bytes that
 * hash to its name, and the summary last, whose counts must match. Nothing
 * is trusted before it is checked, so a damaged or foreign archive fails
 * with the reason instead of restoring half a node.
 */
export async function readBackup (path: string, targets: ReadTargets): Promise<ReadResult> {
  const extract = tar.extract()
  const file = createReadStream(path)
  file.on('data', chunk => { targets.onBytes?.((chunk as Buffer).length) })
  file.on('error', err => { extract.destroy(err) })
  file.pipe(extract as unknown as NodeJS.WritableStream)

  let manifest: BackupManifest | undefined
  let summary: BackupSummary | undefined
  let config: Buffer | undefined
  let identity: Buffer | undefined
  let listed = new Map<string, number>()
  let store: Promise<BlobStore> | undefined
  const seen = { dbEntries: 0, dbChunks: 0, blobs: 0, blobBytes: 0 }
  try {
    for await (const entry of extract) {
      const name = entry.header.name
      const body = entry as unknown as Readable
      if (summary !== undefined) throw new Error(`entry ${name} after the summary`)
      if (manifest === undefined) {
        if (name !== MANIFEST) throw new Error(`it starts with ${name}, not ${MANIFEST}`)
        manifest = parseManifest(await readWhole(body, 64 * SMALL_ENTRY_MAX, name))
        listed = new Map(manifest.blobs.map(b => [b.sha256, b.size]))
      } else if (name === CONFIG) {
        config = await readWhole(body, SMALL_ENTRY_MAX, name)
      } else if (name === IDENTITY) {
        identity = await readWhole(body, SMALL_ENTRY_MAX, name)
      } else if (name.startsWith(DB_PREFIX)) {
        if (name !== dbChunkName(seen.dbChunks + 1)) throw new Error(`database chunk ${name} is out of order`)
        const chunk = await readWhole(body, DB_CHUNK_MAX, name)
        let batch = targets.db.batch()
        for (const [key, value] of unframeEntries(chunk)) {
          batch.put(key as unknown as string, value, { keyEncoding: 'view', valueEncoding: 'view' })
          seen.dbEntries += 1
          if (batch.length >= 1000) { await batch.write(); batch = targets.db.batch() }
        }
        await batch.write()
        seen.dbChunks += 1
      } else if (name.startsWith(BLOB_PREFIX)) {
        const sha256 = name.slice(BLOB_PREFIX.length)
        const size = listed.get(sha256)
        if (size === undefined) throw new Error(`blob ${sha256} is not in the manifest`)
        if (entry.header.size !== size) throw new Error(`blob ${sha256} has ${String(entry.header.size)} bytes, the manifest says ${size}`)
        if (targets.openBlobs !== undefined && config === undefined) throw new Error('blobs come before the config')
        store ??= targets.openBlobs?.(config as Buffer)
        await takeBlob(body, sha256, await store)
        listed.delete(sha256)
        seen.blobs += 1
        seen.blobBytes += size
      } else if (name === SUMMARY) {
        summary = JSON.parse((await readWhole(body, SMALL_ENTRY_MAX, name)).toString('utf8')) as BackupSummary
      } else {
        throw new Error(`unexpected entry ${name}`)
      }
    }
  } catch (err) {
    if (err instanceof DwError) throw err
    throw damaged(path, err instanceof Error ? err.message : String(err))
  } finally {
    file.destroy()
  }
  if (manifest === undefined) throw damaged(path, 'it is empty')
  if (summary === undefined) throw damaged(path, 'it is cut short (no summary at the end)')
  if (config === undefined || identity === undefined) throw damaged(path, 'the config or the identity is missing')
  for (const field of ['dbEntries', 'dbChunks', 'blobs', 'blobBytes'] as const) {
    if (summary[field] !== seen[field]) throw damaged(path, `the summary counts ${summary[field]} ${field}, the archive holds ${seen[field]}`)
  }
  if (manifest.filesIncluded && listed.size > 0) throw damaged(path, `${listed.size} blob(s) of the manifest are missing`)
  return { manifest, summary, config, identity }
}

function parseManifest (bytes: Buffer): BackupManifest {
  const manifest = JSON.parse(bytes.toString('utf8')) as BackupManifest
  if (manifest?.format !== FORMAT) throw new Error(`its format is ${JSON.stringify(manifest?.format)}, not ${FORMAT}`)
  if (!Array.isArray(manifest.blobs) || typeof manifest.peerId !== 'string') throw new Error('its manifest is malformed')
  return manifest
}

async function takeBlob (body: Readable, sha256: string, store: BlobStore | undefined): Promise<void> {
  if (store !== undefined) {
    // The store hashes while it writes and refuses a mismatch (INTEGRITY_MISMATCH), keeping nothing.
    await store.put(body as AsyncIterable<Uint8Array>, { expectedSha256: sha256 })
    return
  }
  const hash = createHash('sha256')
  for await (const chunk of body) hash.update(chunk as Buffer)
  if (hash.digest('hex') !== sha256) throw new Error(`blob ${sha256}'s bytes do not hash to its name`)
}

/** Loads every document in `db`: the proof that the records of a backup (or a restored node) are whole. */
export async function loadEveryRecord (db: Db): Promise<{ records: number, failed: Array<{ key: string, error: string }> }> {
  const docs = await DocStore.open(db, { summarise, cacheSize: 8 })
  let records = 0
  const failed: Array<{ key: string, error: string }> = []
  for await (const [key] of docs.scan('')) {
    try {
      if (!await docs.read(key, doc => doc !== undefined)) failed.push({ key, error: 'its bytes are missing' })
      else records += 1
    } catch (err) {
      failed.push({ key, error: err instanceof Error ? err.message : String(err) })
    }
  }
  await docs.flush()
  return { records, failed }
}
