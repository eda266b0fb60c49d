import { randomUUID } from 'node:crypto'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { Readable } from 'node:stream'
import { Client } from 'minio'
import { abortable } from '../abortable.ts'
import { DwError } from '../errors.ts'
import { AbstractBlobStore } from './abstract-store.ts'
import type { BlobInfo } from './blob-store.ts'
import { hasCode, isNotFound, s3Call, storageError, type S3Place } from './s3-errors.ts'
import { assertPartSize, DEFAULT_PART_SIZE, MultipartUpload } from './s3-multipart.ts'
import { isSha256Hex } from './sha256.ts'

const DEFAULT_STALE_TEMP_MS = 60 * 60 * 1000

/** Where an S3BlobStore keeps its blobs, and how it reaches the server. */
export interface S3BlobStoreOptions {
  /** Host name or IP of the S3 server (no scheme, no port). */
  endPoint: string
  port: number
  useSSL: boolean
  accessKey: string
  secretKey: string
  bucket: string
  /**
   * Prepended to every key: blobs live at `<prefix>blobs/<sha256>`, puts in
   * flight at `<prefix>tmp/<random>`. Empty, or ending in `/`.
   */
  prefix: string
  /** The bucket's region; looked up from the server when absent. */
  region?: string
  /**
   * Bytes buffered per multipart part (default 16 MiB, at least 5 MiB); one
   * put holds about this much in memory. Blobs smaller than this are
   * uploaded in a single request.
   */
  partSize?: number
  /**
   * `open()` deletes temp objects at least this old (default one hour): puts
   * that a crash or a lost connection never finished. Younger ones may belong
   * to a put still running in another process on the same prefix.
   */
  staleTempMs?: number
}

/**
 * Blobs as objects at `<prefix>blobs/<sha256>` in an S3 bucket (MinIO or any
 * S3-compatible server), through the `minio` client.
 *
 * A put hashes the bytes as they arrive (see AbstractBlobStore) and hands
 * them to a MultipartUpload: a blob smaller than one part is written to its
 * final key with one PutObject once verified; a larger one streams part by
 * part to `<prefix>tmp/<random>` and is copied to its final key only after
 * the hash is verified. Either way a blob key only ever holds complete,
 * verified bytes, and a failed or aborted put leaves no parts behind.
 *
 * `existed` is exact for puts through this store object (commits and deletes
 * of one hash run one at a time); between processes sharing a bucket two
 * concurrent puts of the same content may both report false, which the
 * contract allows. One store per prefix is assumed, as with FsBlobStore.
 */
export class S3BlobStore extends AbstractBlobStore<MultipartUpload> {
  readonly #client: Client
  readonly #agent: HttpAgent
  readonly #place: S3Place
  readonly #blobPrefix: string
  readonly #tmpPrefix: string
  readonly #partSize: number
  /** Cleanups of aborted puts still running; `close()` waits for them. */
  readonly #cleanups = new Set<Promise<void>>()

  /** Prefer `open()`, which also creates the bucket and clears stale temp objects. */
  constructor (options: S3BlobStoreOptions) {
    super()
    const { endPoint, port, useSSL, accessKey, secretKey, bucket, prefix, region } = options
    const partSize = options.partSize ?? DEFAULT_PART_SIZE
    if (prefix !== '' && !prefix.endsWith('/')) {
      throw new DwError('INVALID_INPUT', `the S3 prefix must be empty or end with "/", got "${prefix}"`)
    }
    assertPartSize(partSize)
    this.#agent = useSSL ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
    try {
      this.#client = new Client({
        endPoint,
        port,
        useSSL,
        accessKey,
        secretKey,
        ...(region !== undefined ? { region } : {}),
        // Only used by the single-request put, which is always below one part.
        partSize,
        transportAgent: this.#agent,
        // Its retry logs to the console and leaves the failed response unread; callers retry a BLOB_UNAVAILABLE.
        retryOptions: { disableRetry: true }
      })
    } catch (err) {
      this.#agent.destroy()
      throw new DwError('INVALID_INPUT', `invalid S3 settings: ${(err as Error).message}`, { cause: err })
    }
    this.#place = {
      server: `${useSSL ? 'https' : 'http'}://${endPoint.includes(':') ? `[${endPoint}]` : endPoint}:${port}`,
      bucket
    }
    this.#blobPrefix = `${prefix}blobs/`
    this.#tmpPrefix = `${prefix}tmp/`
    this.#partSize = partSize
  }

  /** Connects, creates the bucket if missing and deletes temp objects left by puts that never finished. */
  static async open (options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const store = new S3BlobStore(options)
    try {
      await store.#ensureBucket(options.region)
      await store.#clearStaleTemp(options.staleTempMs ?? DEFAULT_STALE_TEMP_MS)
      return store
    } catch (err) {
      await store.close()
      throw err
    }
  }

  protected override async _begin (): Promise<MultipartUpload> {
    return new MultipartUpload({ client: this.#client, place: this.#place, tmpKey: `${this.#tmpPrefix}${randomUUID()}`, partSize: this.#partSize })
  }

  protected override async _write (upload: MultipartUpload, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<void> {
    // A part upload in flight does not watch the signal; the put is answered at once and `_discard` waits for the part.
    await abortable(upload.receive(chunks, signal), signal)
  }

  protected override async _commit (upload: MultipartUpload, { sha256, size }: BlobInfo): Promise<boolean> {
    if (await this._has(sha256)) {
      await upload.discard()
      return true
    }
    await upload.commit(this.#key(sha256), size)
    return false
  }

  protected override async _discard (upload: MultipartUpload, aborted: boolean): Promise<void> {
    const cleanup = upload.discard()
    if (!aborted) {
      await cleanup
      return
    }
    // An abort is answered at once; a part upload in flight finishes in the background, and close() waits for it.
    this.#cleanups.add(cleanup)
    void cleanup.finally(() => this.#cleanups.delete(cleanup))
  }

  protected override async _stat (sha256: string): Promise<BlobInfo | undefined> {
    try {
      const { size } = await this.#client.statObject(this.#place.bucket, this.#key(sha256))
      return { sha256, size }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw storageError(err, `reading the size of blob ${sha256}`, this.#place)
    }
  }

  protected override async _get (sha256: string, offset: number): Promise<Readable | { size: number } | undefined> {
    try {
      // One request in the common case; the size is fetched only to explain a range S3 refused.
      return await this.#client.getPartialObject(this.#place.bucket, this.#key(sha256), offset)
    } catch (err) {
      if (isNotFound(err)) return undefined
      if (!hasCode(err, 'InvalidRange')) throw storageError(err, `reading blob ${sha256}`, this.#place)
    }
    // S3 answers 416 to a range starting at the end, which the contract calls an empty tail.
    const info = await this._stat(sha256)
    if (info === undefined || offset > info.size) return info
    return Readable.from([])
  }

  protected override async _delete (sha256: string): Promise<boolean> {
    // S3 deletes are idempotent and do not say whether the key was there.
    if (!(await this._has(sha256))) return false
    await s3Call(this.#place, `deleting blob ${sha256}`, async () => { await this.#client.removeObject(this.#place.bucket, this.#key(sha256)) })
    return true
  }

  protected override async * _list (): AsyncIterable<BlobInfo> {
    const listing = this.#client.listObjectsV2(this.#place.bucket, this.#blobPrefix, true)
    try {
      for await (const item of listing as AsyncIterable<{ name?: string, size: number }>) {
        const sha256 = item.name?.slice(this.#blobPrefix.length)
        // Anything else under the prefix (say, another store's prefix nested inside this one) is not ours.
        if (isSha256Hex(sha256)) yield { sha256, size: item.size }
      }
    } catch (err) {
      throw storageError(err, 'listing blobs', this.#place)
    } finally {
      listing.destroy()
    }
  }

  protected override async _close (): Promise<void> {
    await Promise.all(this.#cleanups)
    this.#agent.destroy()
  }

  #key (sha256: string): string {
    return `${this.#blobPrefix}${sha256}`
  }

  async #ensureBucket (region: string | undefined): Promise<void> {
    const { bucket } = this.#place
    try {
      if (await this.#client.bucketExists(bucket)) return
      await this.#client.makeBucket(bucket, region ?? '')
    } catch (err) {
      // Created by someone else since bucketExists answered.
      if (hasCode(err, 'BucketAlreadyOwnedByYou')) return
      throw storageError(err, `creating bucket "${bucket}"`, this.#place)
    }
  }

  async #clearStaleTemp (olderThanMs: number): Promise<void> {
    const cutoff = Date.now() - olderThanMs
    const stale: string[] = []
    const listing = this.#client.listObjectsV2(this.#place.bucket, this.#tmpPrefix, true)
    try {
      for await (const item of listing as AsyncIterable<{ name?: string, lastModified?: Date }>) {
        if (item.name !== undefined && (item.lastModified?.getTime() ?? 0) <= cutoff) stale.push(item.name)
      }
      for (const name of stale) await this.#client.removeObject(this.#place.bucket, name)
    } catch (err) {
      throw storageError(err, 'clearing temp objects', this.#place)
    } finally {
      listing.destroy()
    }
  }
}
