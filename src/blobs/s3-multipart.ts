import { type Client, CopyDestinationOptions, CopySourceOptions } from 'minio'
import { DwError } from '../errors.ts'
import { s3Call, type S3Place } from './s3-errors.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
/** S3 limits: parts of a multipart upload, and the largest object a single CopyObject may copy. */
const MIN_PART_SIZE = 5 * MiB
const MAX_PART_SIZE = 5 * GiB
const MAX_PARTS = 10_000
const MAX_SINGLE_COPY = 5 * GiB
export const DEFAULT_PART_SIZE = 16 * MiB
/** Parts grow every this many parts (see `partSizeFor`). */
const PARTS_PER_STEP = 2000
/** How much parts grow at most: 62,000 parts' worth over S3's 10,000 parts is at most 16 times `partSize`. */
const MAX_GROWTH = 16

/** Throws INVALID_INPUT unless parts of `partSize` bytes, grown as `partSizeFor` grows them, stay within S3's limits. */
export function assertPartSize (partSize: number): void {
  if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize * MAX_GROWTH > MAX_PART_SIZE) {
    throw new DwError('INVALID_INPUT', `partSize must be an integer from 5 MiB to ${MAX_PART_SIZE / MAX_GROWTH / MiB} MiB`, { details: { partSize } })
  }
}

export interface MultipartUploadInit {
  client: Client
  place: S3Place
  /** Where the parts go: a temp key that no reader takes for a blob. */
  tmpKey: string
  /** Bytes per part, checked by `assertPartSize`. */
  partSize: number
}

/**
 * The bytes of one put on their way into S3. They are held in memory until
 * they fill a part; a blob smaller than that is written with one PutObject,
 * which S3 makes visible atomically. A larger one goes part by part into a
 * multipart upload at `tmpKey`, and `commit` completes it there and then
 * server-side copies it to its final key (S3 has no rename), so the final
 * key only ever holds complete bytes.
 *
 * The upload is driven here rather than by `client.putObject` with a stream:
 * that path lists the bucket's multipart uploads before every put (to resume
 * one), which s3rver and some S3 clones do not implement, never ends when the
 * source stream fails, and cannot be aborted; here `discard` aborts the
 * upload, so no parts are left behind.
 */
export class MultipartUpload {
  readonly #client: Client
  readonly #place: S3Place
  readonly #tmpKey: string
  readonly #partSize: number
  #uploadId: string | undefined
  readonly #parts: Array<{ part: number, etag: string }> = []
  /** Chunks not yet in a part. Chunks belong to the store once yielded (BlobStore contract), so they are kept without copying. */
  #pending: Uint8Array[] = []
  #pendingBytes = 0
  /** Settles when `receive` has stopped, so that no part can land after `discard` aborted the upload. */
  #received: Promise<unknown> = Promise.resolve()
  /** Completed: an object now exists at `tmpKey`. */
  #completed = false

  constructor ({ client, place, tmpKey, partSize }: MultipartUploadInit) {
    this.#client = client
    this.#place = place
    this.#tmpKey = tmpKey
    this.#partSize = partSize
  }

  /** Reads `chunks` to the end, uploading a part whenever a part's worth has arrived. */
  async receive (chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<void> {
    const receiving = this.#receive(chunks, signal)
    this.#received = receiving.catch(() => {})
    await receiving
  }

  async #receive (chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<void> {
    for await (const chunk of chunks) {
      this.#pending.push(chunk)
      this.#pendingBytes += chunk.byteLength
      if (this.#pendingBytes >= this.#partSizeFor(this.#parts.length + 1)) await this.#uploadPart(this.#takePending(), signal)
    }
    if (this.#uploadId !== undefined && this.#pendingBytes > 0) await this.#uploadPart(this.#takePending(), signal)
  }

  /** Makes the received bytes the object at `key`. */
  async commit (key: string, size: number): Promise<void> {
    const bucket = this.#place.bucket
    await s3Call(this.#place, 'storing a blob', async () => {
      if (this.#uploadId === undefined) {
        // A single PutObject is atomic: readers see all of the bytes or none, so no temp object is needed.
        await this.#client.putObject(bucket, key, this.#takePending(), size)
        return
      }
      await this.#client.completeMultipartUpload(bucket, this.#tmpKey, this.#uploadId, this.#parts)
      this.#completed = true
      const source = new CopySourceOptions({ Bucket: bucket, Object: this.#tmpKey })
      const target = new CopyDestinationOptions({ Bucket: bucket, Object: key })
      // CopyObject copies at most 5 GiB; composeObject copies a larger object part by part (UploadPartCopy).
      if (size <= MAX_SINGLE_COPY) await this.#client.copyObject(source, target)
      else if (await this.#client.composeObject(target, [source]) === false) throw new Error('composeObject refused the copy')
      await this.#client.removeObject(bucket, this.#tmpKey)
      this.#completed = false
    })
  }

  /** Best effort, once `receive` has stopped: removes whatever the upload left at its temp key. */
  async discard (): Promise<void> {
    await this.#received
    this.#pending = []
    try {
      if (this.#completed) {
        await this.#client.removeObject(this.#place.bucket, this.#tmpKey)
      } else if (this.#uploadId !== undefined) {
        await this.#client.abortMultipartUpload(this.#place.bucket, this.#tmpKey, this.#uploadId)
      }
      this.#completed = false
      this.#uploadId = undefined
    } catch {
      // Left behind: a completed temp object goes at a later open(); parts the server would not
      // abort (s3rver lacks AbortMultipartUpload) go with its stale-upload expiry (MinIO: 24 h)
      // or an AbortIncompleteMultipartUpload lifecycle rule (AWS).
    }
  }

  /**
   * Parts stay `partSize` for the first 2,000 and then double every 2,000,
   * so a put holds one part of memory for all but huge blobs while S3's
   * 10,000-part limit still allows 62,000 parts' worth (about 970 GiB at 16 MiB).
   */
  #partSizeFor (partNumber: number): number {
    return this.#partSize * 2 ** Math.floor((partNumber - 1) / PARTS_PER_STEP)
  }

  /** The pending chunks as one Buffer (without a copy when there is only one), leaving none pending. */
  #takePending (): Buffer {
    const chunks = this.#pending
    const total = this.#pendingBytes
    this.#pending = []
    this.#pendingBytes = 0
    const [only] = chunks
    if (chunks.length === 1 && only !== undefined) return Buffer.from(only.buffer, only.byteOffset, only.byteLength)
    return Buffer.concat(chunks, total)
  }

  async #uploadPart (body: Buffer, signal: AbortSignal | undefined): Promise<void> {
    const partNumber = this.#parts.length + 1
    if (partNumber > MAX_PARTS) {
      throw new DwError('PAYLOAD_TOO_LARGE', `the blob is larger than an S3 multipart upload of ${MAX_PARTS} parts can hold`)
    }
    await s3Call(this.#place, 'uploading a blob', async () => {
      signal?.throwIfAborted()
      this.#uploadId ??= await this.#client.initiateNewMultipartUpload(this.#place.bucket, this.#tmpKey, {})
      signal?.throwIfAborted()
      const { etag } = await this.#client.uploadPart({
        bucketName: this.#place.bucket,
        objectName: this.#tmpKey,
        uploadID: this.#uploadId,
        partNumber,
        headers: { 'Content-Length': String(body.byteLength) }
      }, body)
      this.#parts.push({ part: partNumber, etag })
    })
  }
}
