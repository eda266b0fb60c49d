import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'

/** The part of s3rver's API used here (the package ships no types). */
interface S3rverServer {
  run: () => Promise<AddressInfo>
  close: () => Promise<void>
  httpServer?: Server
}
type S3rverClass = new (options: { address: string, port: number, silent: boolean, directory: string }) => S3rverServer

const requireCjs = createRequire(import.meta.url)
const S3rver = requireCjs('s3rver') as S3rverClass

/** The part of s3rver's on-disk store that `putObject` needs. */
interface S3rverObject { bucket: string, key: string, content: Buffer | AsyncIterable<Buffer>, metadata: unknown }
interface FilesystemStore {
  getResourcePath: (bucket: string, key: string, resource: string) => string
  putMetadata: (bucket: string, key: string, metadata: unknown, md5: string) => Promise<void>
  putObject: (object: S3rverObject) => Promise<{ size: number, md5: string }>
}

/**
 * s3rver 3.7.1 answers a PutObject when the bytes have gone through its hash,
 * before its file write has finished, so a GET right after can read an empty
 * or short object (CI failed on this once: a 10-byte blob read back as 0
 * bytes). S3 and MinIO answer only once the object is stored. This replaces
 * that one method with one that waits for the file.
 */
function fixS3rverPutObject (): void {
  const store = requireCjs('s3rver/lib/stores/filesystem') as { prototype: FilesystemStore }
  store.prototype.putObject = async function (this: FilesystemStore, object: S3rverObject) {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object')
    await mkdir(dirname(objectPath), { recursive: true })
    const hash = createHash('md5')
    let size = 0
    const content = Buffer.isBuffer(object.content) ? [object.content] : object.content
    await pipeline(content, async function * (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk)
        size += chunk.byteLength
        yield chunk
      }
    }, createWriteStream(objectPath))
    const md5 = hash.digest('hex')
    await this.putMetadata(object.bucket, object.key, object.metadata, md5)
    return { size, md5 }
  }
}
fixS3rverPutObject()

/** A running s3rver, with what an S3 client needs to reach it. */
export interface S3rverHandle {
  endPoint: string
  port: number
  useSSL: false
  accessKey: 'S3RVER'
  secretKey: 'S3RVER'
  /** Where s3rver keeps buckets and objects on disk. */
  directory: string
  /** Stops the server, cutting idle keep-alive connections, and deletes its directory. */
  close: () => Promise<void>
}

/**
 * Starts s3rver (an S3-protocol server that keeps objects in a directory) on
 * 127.0.0.1 at a free port, silent, in a fresh temp directory. s3rver accepts
 * any signature made with the key pair S3RVER/S3RVER.
 */
export async function startS3rver (): Promise<S3rverHandle> {
  const directory = await mkdtemp(join(tmpdir(), 'dw-s3rver-'))
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory })
  let address: AddressInfo
  try {
    address = await server.run()
  } catch (err) {
    await rm(directory, { recursive: true, force: true })
    throw err
  }
  let closed: Promise<void> | undefined
  return {
    endPoint: '127.0.0.1',
    port: address.port,
    useSSL: false,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    directory,
    close: async () => {
      closed ??= (async () => {
        const stopping = server.close()
        server.httpServer?.closeAllConnections()
        await stopping
        await rm(directory, { recursive: true, force: true })
      })()
      await closed
    }
  }
}
