import { mkdtemp, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The part of s3rver's API used here (the package ships no types). */
interface S3rverServer {
  run: () => Promise<AddressInfo>
  close: () => Promise<void>
  httpServer?: Server
}
type S3rverClass = new (options: { address: string, port: number, silent: boolean, directory: string }) => S3rverServer

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass

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
