/**
 * The backup archive: a tar file, entries in this order.
 *
 *   manifest.json       what the backup holds: node, time, feed, blob list
 *   config.json         the node's config
 *   identity.key        its private key (the same site after a restore)
 *   db/000001 ...       every LevelDB entry from one snapshot, in frames
 *   blobs/<sha256> ...  file bytes (fs stores; S3 only when asked)
 *   summary.json        counts, written last: an archive without it is cut short
 *
 * LevelDB entries are dumped raw (sublevel prefixes included), so the
 * records, the peer book, accounts, checkpoints and the audit log all come
 * back exactly as they were at the snapshot.
 */
export const FORMAT = 'dw-backup/1'
export const MANIFEST = 'manifest.json'
export const CONFIG = 'config.json'
export const IDENTITY = 'identity.key'
export const SUMMARY = 'summary.json'
export const DB_PREFIX = 'db/'
export const BLOB_PREFIX = 'blobs/'

/** LevelDB entries go out in chunks of about this size (one tar entry each: tar wants sizes up front). */
export const DB_CHUNK_BYTES = 4 * 1024 * 1024

export interface BackupManifest {
  format: typeof FORMAT
  createdAt: string
  peerId: string
  name: string
  /** The feed as the snapshot saw it. */
  epoch: string
  seq: number
  blobStore: 'fs' | 's3'
  /** Whether blob bytes are in the archive; otherwise the store (an S3 bucket) keeps them. */
  filesIncluded: boolean
  blobs: Array<{ sha256: string, size: number }>
}

export interface BackupSummary {
  dbEntries: number
  dbChunks: number
  blobs: number
  blobBytes: number
}

export function dbChunkName (n: number): string {
  return `${DB_PREFIX}${String(n).padStart(6, '0')}`
}

/** Frames one LevelDB entry: u32 key length, key, u32 value length, value. */
export function frameEntry (key: Uint8Array, value: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8 + key.length + value.length)
  out.writeUInt32BE(key.length, 0)
  out.set(key, 4)
  out.writeUInt32BE(value.length, 4 + key.length)
  out.set(value, 8 + key.length)
  return out
}

/** The entries of one db chunk; throws on a frame that runs past the chunk (a damaged archive). */
export function * unframeEntries (chunk: Buffer): Generator<[Buffer, Buffer]> {
  let at = 0
  while (at < chunk.length) {
    if (at + 4 > chunk.length) throw new Error('a database frame is cut short')
    const keyLength = chunk.readUInt32BE(at)
    const valueAt = at + 4 + keyLength
    if (valueAt + 4 > chunk.length) throw new Error('a database frame is cut short')
    const valueLength = chunk.readUInt32BE(valueAt)
    const end = valueAt + 4 + valueLength
    if (end > chunk.length) throw new Error('a database frame is cut short')
    yield [chunk.subarray(at + 4, valueAt), chunk.subarray(valueAt + 4, end)]
    at = end
  }
}
