import type { Readable } from 'node:stream'

/** What a store knows about one blob. */
export interface BlobInfo {
  /** Lowercase hex sha256 of the bytes: the blob's name. */
  sha256: string
  /** Length in bytes. */
  size: number
}

export interface PutOptions {
  /**
   * The hash the caller was promised (by a peer, or a version record). If the
   * bytes hash differently, `put` throws DwError INTEGRITY_MISMATCH and stores
   * nothing.
   */
  expectedSha256?: string
  /** Aborting rejects `put` (AbortError) and stores nothing, even if the source is stalled. */
  signal?: AbortSignal
}

/**
 * Content-addressed storage for file bytes: a blob is named by the sha256 of
 * its contents, so identical content is stored once and a name can always be
 * checked against the bytes. Implementations (filesystem, MinIO/S3, memory)
 * all pass test/suites/blob-store-contract.ts.
 *
 * Every method that takes a `sha256` rejects with DwError INVALID_INPUT unless
 * it is 64 lowercase hex characters.
 */
export interface BlobStore {
  /**
   * Streams bytes in, hashing while writing; the blob becomes visible only
   * once it is complete and verified, so readers never see a partial blob.
   * Identical content is stored once: `existed` is true when the blob was
   * already present (under concurrent puts of the same content at least one
   * reports false).
   *
   * Chunks are owned by the store once yielded: the source must not reuse
   * their buffers. A source that throws, or a non-Uint8Array chunk
   * (DwError INVALID_INPUT), rejects the put and stores nothing.
   */
  put (source: AsyncIterable<Uint8Array>, options?: PutOptions): Promise<BlobInfo & { existed: boolean }>

  has (sha256: string): Promise<boolean>

  /** Size of a stored blob, or undefined when absent. */
  stat (sha256: string): Promise<BlobInfo | undefined>

  /**
   * A readable stream of the blob's bytes from `offset` (default 0) to the
   * end. Rejects with DwError BLOB_NOT_FOUND when absent, INVALID_INPUT when
   * `offset` is not an integer in `[0, size]` (`size` gives an empty stream).
   */
  get (sha256: string, options?: { offset?: number }): Promise<Readable>

  /** Removes a blob; resolves false when it was not there. */
  delete (sha256: string): Promise<boolean>

  /** Every stored blob, once each, in no particular order. */
  list (): AsyncIterable<BlobInfo>

  /**
   * Optional: moves a complete local file, which the caller has already
   * hashed as `sha256` and fsynced, into the store without copying it (a
   * rename on the same filesystem). Stores that cannot leave it undefined and
   * callers fall back to `put`. Used for blobs fetched from peers, which are
   * verified while they arrive.
   */
  adoptVerifiedFile?: (path: string, sha256: string) => Promise<BlobInfo & { existed: boolean }>

  close (): Promise<void>
}
