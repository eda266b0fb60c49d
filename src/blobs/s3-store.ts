import { createHash, randomUUID } from 'node:crypto'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { Readable } from 'node:stream'
import { Client, CopyDestinationOptions, CopySourceOptions } from 'minio'
import { DwError } from '../errors.ts'
import { KeyLock } from '../key-lock.ts'
import { abortableIterable } from '../abortable.ts'
import type { BlobInfo, BlobStore, PutOptions } from './blob-store.ts'
import { assertSha256Hex, isSha256Hex } from './sha256.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
/** S3 limits: parts of a multipart upload, and the largest object a single CopyObject may copy. */
const MIN_PART_SIZE = 5 * MiB
const MAX_PART_SIZE = 5 * GiB
const MAX_PARTS = 10_000
const MAX_SINGLE_COPY = 5 * GiB
const DEFAULT_PART_SIZE = 16 * MiB
/** Parts grow every this many parts (see `partSizeFor`). */
const PARTS_PER_STEP = 2000
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

/** The multipart upload behind one put, as far as it got: what a cleanup must undo. */
interface Upload {
  tmpKey: string
  uploadId?: string
  parts: Array<{ part: number, etag: string }>
  /** Completed: an object now exists at `tmpKey`. */
  completed: boolean
}

/** A put's bytes once received and hashed: in memory when smaller than a part, else parts of `upload`. */
type Staged =
  | { sha256: string, size: number, body: Buffer }
  | { sha256: string, size: number, upload: Upload }

/**
 * Blobs as objects at `<prefix>blobs/<sha256>` in an S3 bucket (MinIO or any
 * S3-compatible server), through the `minio` client.
 *
 * A put hashes the bytes as they arrive. A blob smaller than one part is held
 * in memory, verified, and written to its final key with one PutObject, which
 * S3 makes visible atomically. A larger one streams part by part into a
 * multipart upload at `<prefix>tmp/<random>`; only after the hash is verified
 * is the upload completed and server-side copied to its final key (S3 has no
 * rename), then the temp object deleted. Either way a blob key only ever holds
 * complete, verified bytes.
 *
 * The multipart upload is driven here rather than by `client.putObject` with a
 * stream: that path lists the bucket's multipart uploads before every put
 * (to resume one), which s3rver and some S3 clones do not implement, never
 * ends when the source stream fails, and cannot be aborted; here a failed or
 * aborted put aborts its multipart upload, so no parts are left behind.
 *
 * `existed` is exact for puts through this store object (commits and deletes
 * of one hash run one at a time); between processes sharing a bucket two
 * concurrent puts of the same content may both report false, which the
 * contract allows. One store per prefix is assumed, as with FsBlobStore.
 */
export class S3BlobStore implements BlobStore {
  readonly #client: Client
  readonly #agent: HttpAgent
  readonly #bucket: string
  readonly #blobPrefix: string
  readonly #tmpPrefix: string
  readonly #partSize: number
  readonly #server: string
  /** Tail of the queue of commits and deletes per hash. */
  /**
   * Commits and deletes of one hash run one at a time, so `existed` is exact
   * within the process and a delete never interleaves with the
   * check-then-write of a put.
   */
  readonly #perHash = new KeyLock()
  /** Cleanups of aborted puts still running; `close()` waits for them. */
  readonly #cleanups = new Set<Promise<void>>()

  /** Prefer `open()`, which also creates the bucket and clears stale temp objects. */
  constructor (options: S3BlobStoreOptions) {
    const { endPoint, port, useSSL, accessKey, secretKey, bucket, prefix, region } = options
    const partSize = options.partSize ?? DEFAULT_PART_SIZE
    if (prefix !== '' && !prefix.endsWith('/')) {
      throw new DwError('INVALID_INPUT', `the S3 prefix must be empty or end with "/", got "${prefix}"`)
    }
    // Parts grow to 16 * partSize (see #partSizeFor), which must stay within S3's 5 GiB part limit.
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize * 16 > MAX_PART_SIZE) {
      throw new DwError('INVALID_INPUT', `partSize must be an integer from 5 MiB to ${MAX_PART_SIZE / 16 / MiB} MiB`, { details: { partSize } })
    }
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
    this.#bucket = bucket
    this.#blobPrefix = `${prefix}blobs/`
    this.#tmpPrefix = `${prefix}tmp/`
    this.#partSize = partSize
    this.#server = `${useSSL ? 'https' : 'http'}://${endPoint.includes(':') ? `[${endPoint}]` : endPoint}:${port}`
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

  async put (source: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<BlobInfo & { existed: boolean }> {
    const { expectedSha256, signal } = options
    if (expectedSha256 !== undefined) assertSha256Hex(expectedSha256)
    signal?.throwIfAborted()

    const upload: Upload = { tmpKey: `${this.#tmpPrefix}${randomUUID()}`, parts: [], completed: false }
    const receiving = this.#receive(source, upload, signal)
    try {
      const staged = await untilAborted(receiving, signal)
      const { sha256, size } = staged
      if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
        throw new DwError('INTEGRITY_MISMATCH', 'blob content does not match the expected sha256', {
          details: { expected: expectedSha256, actual: sha256, size }
        })
      }
      const existed = await this.#perHash.run(sha256, async () => await this.#commit(staged))
      return { sha256, size, existed }
    } catch (err) {
      // Waits for the receiving side to stop first, or a part could land after its upload is aborted.
      const cleanup = receiving.then(() => {}, () => {}).then(async () => { await this.#discard(upload) })
      if (signal?.aborted === true) {
        // An abort is answered at once; a part upload in flight finishes in the background, and close() waits for it.
        this.#track(cleanup)
      } else {
        await cleanup
      }
      throw err
    }
  }

  async has (sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined
  }

  async stat (sha256: string): Promise<BlobInfo | undefined> {
    assertSha256Hex(sha256)
    try {
      const { size } = await this.#client.statObject(this.#bucket, this.#key(sha256))
      return { sha256, size }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw this.#storageError(err, `reading the size of blob ${sha256}`)
    }
  }

  async get (sha256: string, options: { offset?: number } = {}): Promise<Readable> {
    assertSha256Hex(sha256)
    const offset = options.offset ?? 0
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new DwError('INVALID_INPUT', 'offset must be a non-negative integer', { details: { offset } })
    }
    try {
      // One request in the common case; the size is fetched only to explain a range S3 refused.
      return await this.#client.getPartialObject(this.#bucket, this.#key(sha256), offset)
    } catch (err) {
      if (isNotFound(err)) throw notFound(sha256)
      if (!hasCode(err, 'InvalidRange')) throw this.#storageError(err, `reading blob ${sha256}`)
    }
    // S3 answers 416 to a range starting at the end, which the contract calls an empty tail.
    const info = await this.stat(sha256)
    if (info === undefined) throw notFound(sha256)
    if (offset === info.size) return Readable.from([])
    throw new DwError('INVALID_INPUT', 'offset is past the end of the blob', { details: { offset, size: info.size } })
  }

  async delete (sha256: string): Promise<boolean> {
    assertSha256Hex(sha256)
    return await this.#perHash.run(sha256, async () => {
      // S3 deletes are idempotent and do not say whether the key was there.
      if (!(await this.has(sha256))) return false
      await this.#s3(`deleting blob ${sha256}`, async () => { await this.#client.removeObject(this.#bucket, this.#key(sha256)) })
      return true
    })
  }

  async * list (): AsyncIterable<BlobInfo> {
    const listing = this.#client.listObjectsV2(this.#bucket, this.#blobPrefix, true)
    try {
      for await (const item of listing as AsyncIterable<{ name?: string, size: number }>) {
        const sha256 = item.name?.slice(this.#blobPrefix.length)
        // Anything else under the prefix (say, another store's prefix nested inside this one) is not ours.
        if (isSha256Hex(sha256)) yield { sha256, size: item.size }
      }
    } catch (err) {
      throw this.#storageError(err, 'listing blobs')
    } finally {
      listing.destroy()
    }
  }

  async close (): Promise<void> {
    await Promise.all(this.#cleanups)
    this.#agent.destroy()
  }

  #key (sha256: string): string {
    return `${this.#blobPrefix}${sha256}`
  }

  /** Reads and hashes the source, uploading a part whenever a part's worth has arrived. */
  async #receive (source: AsyncIterable<Uint8Array>, upload: Upload, signal: AbortSignal | undefined): Promise<Staged> {
    const hash = createHash('sha256')
    let size = 0
    // Chunks belong to the store once yielded (BlobStore contract), so they are kept without copying.
    let pending: Uint8Array[] = []
    let pendingBytes = 0
    for await (const chunk of abortableIterable<unknown>(source, signal)) {
      if (!(chunk instanceof Uint8Array)) {
        throw new DwError('INVALID_INPUT', 'blob source must yield Uint8Array chunks')
      }
      hash.update(chunk)
      size += chunk.byteLength
      pending.push(chunk)
      pendingBytes += chunk.byteLength
      if (pendingBytes >= this.#partSizeFor(upload.parts.length + 1)) {
        const part = concat(pending, pendingBytes)
        pending = []
        pendingBytes = 0
        await this.#uploadPart(upload, part, signal)
      }
    }
    const sha256 = hash.digest('hex')
    if (upload.uploadId === undefined) return { sha256, size, body: concat(pending, pendingBytes) }
    if (pendingBytes > 0) await this.#uploadPart(upload, concat(pending, pendingBytes), signal)
    return { sha256, size, upload }
  }

  /**
   * Parts stay `partSize` for the first 2,000 and then double every 2,000,
   * so a put holds one part of memory for all but huge blobs while S3's
   * 10,000-part limit still allows 62,000 parts' worth (about 970 GiB at 16 MiB).
   */
  #partSizeFor (partNumber: number): number {
    return this.#partSize * 2 ** Math.floor((partNumber - 1) / PARTS_PER_STEP)
  }

  async #uploadPart (upload: Upload, body: Buffer, signal: AbortSignal | undefined): Promise<void> {
    const partNumber = upload.parts.length + 1
    if (partNumber > MAX_PARTS) {
      throw new DwError('PAYLOAD_TOO_LARGE', `the blob is larger than an S3 multipart upload of ${MAX_PARTS} parts can hold`)
    }
    await this.#s3('uploading a blob', async () => {
      signal?.throwIfAborted()
      upload.uploadId ??= await this.#client.initiateNewMultipartUpload(this.#bucket, upload.tmpKey, {})
      signal?.throwIfAborted()
      const { etag } = await this.#client.uploadPart({
        bucketName: this.#bucket,
        objectName: upload.tmpKey,
        uploadID: upload.uploadId,
        partNumber,
        headers: { 'Content-Length': String(body.byteLength) }
      }, body)
      upload.parts.push({ part: partNumber, etag })
    })
  }

  /** Makes verified bytes the blob; true when the blob was already there. */
  async #commit (staged: Staged): Promise<boolean> {
    const key = this.#key(staged.sha256)
    if (await this.has(staged.sha256)) {
      if ('upload' in staged) await this.#discard(staged.upload)
      return true
    }
    await this.#s3('storing a blob', async () => {
      if ('body' in staged) {
        // A single PutObject is atomic: readers see all of the bytes or none, so no temp object is needed.
        await this.#client.putObject(this.#bucket, key, staged.body, staged.size)
        return
      }
      const { upload } = staged
      await this.#client.completeMultipartUpload(this.#bucket, upload.tmpKey, upload.uploadId ?? '', upload.parts)
      upload.completed = true
      const source = new CopySourceOptions({ Bucket: this.#bucket, Object: upload.tmpKey })
      const target = new CopyDestinationOptions({ Bucket: this.#bucket, Object: key })
      // CopyObject copies at most 5 GiB; composeObject copies a larger object part by part (UploadPartCopy).
      if (staged.size <= MAX_SINGLE_COPY) await this.#client.copyObject(source, target)
      else if (await this.#client.composeObject(target, [source]) === false) throw new Error('composeObject refused the copy')
      await this.#client.removeObject(this.#bucket, upload.tmpKey)
      upload.completed = false
    })
    return false
  }

  /** Best effort: removes whatever a put left at its temp key. */
  async #discard (upload: Upload): Promise<void> {
    try {
      if (upload.completed) {
        await this.#client.removeObject(this.#bucket, upload.tmpKey)
      } else if (upload.uploadId !== undefined) {
        await this.#client.abortMultipartUpload(this.#bucket, upload.tmpKey, upload.uploadId)
      }
      upload.completed = false
      upload.uploadId = undefined
    } catch {
      // Left behind: a completed temp object goes at a later open(); parts the server would not
      // abort (s3rver lacks AbortMultipartUpload) go with its stale-upload expiry (MinIO: 24 h)
      // or an AbortIncompleteMultipartUpload lifecycle rule (AWS).
    }
  }

  async #ensureBucket (region: string | undefined): Promise<void> {
    try {
      if (await this.#client.bucketExists(this.#bucket)) return
      await this.#client.makeBucket(this.#bucket, region ?? '')
    } catch (err) {
      // Created by someone else since bucketExists answered.
      if (hasCode(err, 'BucketAlreadyOwnedByYou')) return
      throw this.#storageError(err, `creating bucket "${this.#bucket}"`)
    }
  }

  async #clearStaleTemp (olderThanMs: number): Promise<void> {
    const cutoff = Date.now() - olderThanMs
    const stale: string[] = []
    const listing = this.#client.listObjectsV2(this.#bucket, this.#tmpPrefix, true)
    try {
      for await (const item of listing as AsyncIterable<{ name?: string, lastModified?: Date }>) {
        if (item.name !== undefined && (item.lastModified?.getTime() ?? 0) <= cutoff) stale.push(item.name)
      }
      for (const name of stale) await this.#client.removeObject(this.#bucket, name)
    } catch (err) {
      throw this.#storageError(err, 'clearing temp objects')
    } finally {
      listing.destroy()
    }
  }

  #track (cleanup: Promise<void>): void {
    this.#cleanups.add(cleanup)
    void cleanup.finally(() => this.#cleanups.delete(cleanup))
  }

  /** Runs S3 calls, turning their failures into DwErrors. */
  async #s3<T> (doing: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op()
    } catch (err) {
      throw this.#storageError(err, doing)
    }
  }

  /**
   * The one place S3 and network failures become DwErrors: refused
   * credentials or a missing bucket are CONFIG_INVALID (the settings are
   * wrong); anything else is BLOB_UNAVAILABLE (the server is unreachable or
   * failing; a retry may succeed). DwErrors and AbortErrors pass unchanged.
   */
  #storageError (err: unknown, doing: string): unknown {
    if (err instanceof DwError || (err instanceof Error && err.name === 'AbortError')) return err
    const code = err instanceof Error ? (err as { code?: unknown }).code : undefined
    const name = err instanceof Error ? err.name : ''
    const reason = err instanceof Error && err.message !== '' ? err.message : String(code ?? err)
    if ((typeof code === 'string' && CONFIG_CODES.has(code)) || CONFIG_ERROR_NAMES.has(name)) {
      return new DwError('CONFIG_INVALID', `S3 at ${this.#server} refused ${doing} in bucket "${this.#bucket}": ${reason}`, { cause: err })
    }
    return new DwError('BLOB_UNAVAILABLE', `S3 at ${this.#server} failed ${doing}: ${reason}`, { cause: err, details: { retryAfterSeconds: 30 } })
  }
}

/** S3 error codes that mean the settings are wrong, not that the server is down. */
const CONFIG_CODES = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'NoSuchBucket', 'InvalidBucketName',
  'AllAccessDisabled', 'AccountProblem', 'BucketAlreadyExists', 'AuthorizationHeaderMalformed', 'InvalidRegion'
])
/** The minio client's own argument errors. */
const CONFIG_ERROR_NAMES = new Set(['InvalidBucketNameError', 'InvalidEndpointError', 'InvalidPortError', 'InvalidArgumentError', 'InvalidObjectNameError'])

function notFound (sha256: string): DwError {
  return new DwError('BLOB_NOT_FOUND', `blob ${sha256} not found`, { details: { sha256 } })
}

function isNotFound (err: unknown): boolean {
  return hasCode(err, 'NoSuchKey') || hasCode(err, 'NotFound')
}

function hasCode (err: unknown, code: string): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === code
}

/** One Buffer of the chunks, without a copy when there is only one. */
function concat (chunks: Uint8Array[], total: number): Buffer {
  const [only] = chunks
  if (chunks.length === 1 && only !== undefined) return Buffer.from(only.buffer, only.byteOffset, only.byteLength)
  return Buffer.concat(chunks, total)
}

/** Settles like `work`, or rejects with the abort reason as soon as `signal` aborts. */
async function untilAborted<T> (work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await work
  const { promise: aborted, reject } = Promise.withResolvers<never>()
  aborted.catch(() => {})
  const onAbort = (): void => { reject(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  if (signal.aborted) onAbort()
  try {
    return await Promise.race([work, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
