import { createHash } from 'node:crypto'
import { createServer } from 'node:net'
import { Client } from 'minio'
import t from 'tap'
import type { Test } from 'tap'
import type { BlobInfo, BlobStore } from '../../src/blobs/blob-store.ts'
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/blobs/s3-store.ts'
import { startS3rver } from '../helpers/s3rver.ts'
import { runBlobStoreContract } from '../suites/blob-store-contract.ts'

const MiB = 1024 * 1024
const PART = 5 * MiB

const s3 = await startS3rver()
t.teardown(s3.close)

const raw = new Client({ endPoint: s3.endPoint, port: s3.port, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey })

let buckets = 0
/** A bucket name no test has used yet. */
function newBucket (): string {
  return `dw-test-${++buckets}`
}

function options (bucket: string, extra: Partial<S3BlobStoreOptions> = {}): S3BlobStoreOptions {
  const { endPoint, port, useSSL, accessKey, secretKey } = s3
  return { endPoint, port, useSSL, accessKey, secretKey, bucket, prefix: 'site/', ...extra }
}

async function openStore (t: Test, bucket: string, extra: Partial<S3BlobStoreOptions> = {}): Promise<S3BlobStore> {
  const store = await S3BlobStore.open(options(bucket, extra))
  t.teardown(async () => { await store.close() })
  return store
}

/** Every object key in the bucket, sorted. */
async function keysIn (bucket: string): Promise<string[]> {
  const keys: string[] = []
  for await (const item of raw.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>) {
    if (item.name !== undefined) keys.push(item.name)
  }
  return keys.sort()
}

async function listAll (store: BlobStore): Promise<BlobInfo[]> {
  const infos: BlobInfo[] = []
  for await (const info of store.list()) infos.push(info)
  return infos.sort((a, b) => a.sha256.localeCompare(b.sha256))
}

function sha256Of (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

async function * bytesOf (...chunks: Array<string | Buffer>): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield Buffer.from(chunk)
}

/** `count` chunks of `size` bytes, each a fresh buffer (the store keeps them). */
async function * filled (count: number, size: number, fill = 'x'): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, fill)
}

runBlobStoreContract(t, 'S3BlobStore over s3rver', async () => {
  const store = await S3BlobStore.open(options(newBucket()))
  return { store, teardown: async () => {} }
})

void t.test('open() creates a missing bucket and reopens an existing one with its blobs', async (t) => {
  const bucket = newBucket()
  t.equal(await raw.bucketExists(bucket), false)
  const first = await openStore(t, bucket)
  t.equal(await raw.bucketExists(bucket), true)
  const { sha256 } = await first.put(bytesOf('kept across opens'))
  await first.close()

  const again = await openStore(t, bucket)
  t.same(await listAll(again), [{ sha256, size: 'kept across opens'.length }])
})

void t.test('a blob lives at <prefix>blobs/<sha256>; small and multipart puts leave no temp object', async (t) => {
  const bucket = newBucket()
  const store = await openStore(t, bucket, { partSize: PART })
  const small = await store.put(bytesOf('small'))
  const large = await store.put(filled(12, MiB))
  t.same(large, { sha256: sha256Of(Buffer.alloc(12 * MiB, 'x')), size: 12 * MiB, existed: false })
  t.same(await keysIn(bucket), [`site/blobs/${small.sha256}`, `site/blobs/${large.sha256}`].sort())
  t.equal((await store.put(filled(12, MiB))).existed, true)
  t.equal((await store.put(bytesOf('small'))).existed, true)
  t.same(await keysIn(bucket), [`site/blobs/${small.sha256}`, `site/blobs/${large.sha256}`].sort(), 'duplicates leave nothing')
})

void t.test('a multipart blob streams back whole and from an offset', async (t) => {
  const store = await openStore(t, newBucket(), { partSize: PART })
  const bytes = Buffer.alloc(11 * MiB + 5)
  for (let i = 0; i < bytes.byteLength; i++) bytes[i] = (i * 31 + (i >> 12)) & 0xff
  async function * source (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.byteLength; i += 100_003) yield Buffer.from(bytes.subarray(i, i + 100_003))
  }
  const { sha256, size } = await store.put(source(), { expectedSha256: sha256Of(bytes) })
  t.equal(size, bytes.byteLength)
  const chunks: Buffer[] = []
  for await (const chunk of await store.get(sha256, { offset: 7 * MiB })) chunks.push(chunk as Buffer)
  t.ok(Buffer.concat(chunks).equals(bytes.subarray(7 * MiB)))
})

void t.test('failed puts leave no object behind, small or multipart', async (t) => {
  const bucket = newBucket()
  const store = await openStore(t, bucket, { partSize: PART })
  await t.rejects(store.put(bytesOf('bad'), { expectedSha256: '0'.repeat(64) }), { code: 'INTEGRITY_MISMATCH' })
  await t.rejects(store.put(filled(12, MiB), { expectedSha256: '0'.repeat(64) }), { code: 'INTEGRITY_MISMATCH' })
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield * filled(7, MiB)
    throw new Error('boom after a part')
  }
  await t.rejects(store.put(failing()), { message: 'boom after a part' })
  async function * notBytes (): AsyncGenerator<Uint8Array> {
    yield * filled(6, MiB)
    yield 42 as unknown as Uint8Array
  }
  await t.rejects(store.put(notBytes()), { code: 'INVALID_INPUT' })
  t.same(await keysIn(bucket), [])
})

void t.test('aborted puts leave no object behind', async (t) => {
  const bucket = newBucket()
  const store = await S3BlobStore.open(options(bucket, { partSize: PART }))

  const stalledAfterAPart = new AbortController()
  async function * stalled (): AsyncGenerator<Uint8Array> {
    yield * filled(6, MiB)
    stalledAfterAPart.abort()
    await new Promise(() => {})
  }
  await t.rejects(store.put(stalled(), { signal: stalledAfterAPart.signal }), { name: 'AbortError' })

  // Aborted while a part upload is in flight: the put rejects at once, the cleanup runs after the part lands.
  const midPart = new AbortController()
  async function * abortsDuringUpload (): AsyncGenerator<Uint8Array> {
    yield * filled(4, MiB)
    // Fires once the next chunk has filled a part and its upload request is on the wire.
    setImmediate(() => { midPart.abort() })
    yield * filled(6, MiB)
  }
  await t.rejects(store.put(abortsDuringUpload(), { signal: midPart.signal }), { name: 'AbortError' })

  await store.close()
  t.same(await keysIn(bucket), [])
})

void t.test('two prefixes in one bucket do not see each other', async (t) => {
  const bucket = newBucket()
  const a = await openStore(t, bucket, { prefix: 'site-a/' })
  const b = await openStore(t, bucket, { prefix: 'site-b/' })
  const root = await openStore(t, bucket, { prefix: '' })
  // A store whose prefix lies inside another store's blob folder.
  const nested = await openStore(t, bucket, { prefix: 'site-a/blobs/' })
  const shared = Buffer.from('in both')

  const onlyA = await a.put(bytesOf('only in a'))
  const onlyB = await b.put(bytesOf('only in b'))
  const inRoot = await root.put(bytesOf('at the root'))
  const inNested = await nested.put(bytesOf('nested'))
  t.equal((await a.put(bytesOf(shared))).existed, false)
  t.equal((await b.put(bytesOf(shared))).existed, false, 'the same content is stored once per prefix')

  t.same(await listAll(a), [{ sha256: onlyA.sha256, size: 9 }, { sha256: sha256Of(shared), size: shared.byteLength }].sort((x, y) => x.sha256.localeCompare(y.sha256)))
  t.same(await listAll(b), [{ sha256: onlyB.sha256, size: 9 }, { sha256: sha256Of(shared), size: shared.byteLength }].sort((x, y) => x.sha256.localeCompare(y.sha256)))
  t.same(await listAll(root), [{ sha256: inRoot.sha256, size: 11 }])
  t.same(await listAll(nested), [{ sha256: inNested.sha256, size: 6 }])

  t.equal(await a.has(onlyB.sha256), false)
  t.equal(await b.stat(onlyA.sha256), undefined)
  await t.rejects(a.get(onlyB.sha256), { code: 'BLOB_NOT_FOUND' })
  t.equal(await a.delete(onlyB.sha256), false)
  t.equal(await a.delete(sha256Of(shared)), true)
  t.equal(await b.has(sha256Of(shared)), true, 'a delete under one prefix leaves the other')
})

void t.test('open() clears stale temp objects under its own prefix only', async (t) => {
  const bucket = newBucket()
  const first = await openStore(t, bucket, { prefix: 'mine/' })
  const { sha256 } = await first.put(bytesOf('survivor'))
  await raw.putObject(bucket, 'mine/tmp/left-by-a-crash', Buffer.from('partial'))
  await raw.putObject(bucket, 'theirs/tmp/in-flight', Buffer.from('partial'))

  await openStore(t, bucket, { prefix: 'mine/' })
  t.same(await keysIn(bucket), [`mine/blobs/${sha256}`, 'mine/tmp/left-by-a-crash', 'theirs/tmp/in-flight'], 'young temp objects may be a put in flight')

  await openStore(t, bucket, { prefix: 'mine/', staleTempMs: 0 })
  t.same(await keysIn(bucket), [`mine/blobs/${sha256}`, 'theirs/tmp/in-flight'])
})

void t.test('concurrent puts of one content through one store: exactly one stores it', async (t) => {
  const store = await openStore(t, newBucket())
  const results = await Promise.all(Array.from({ length: 8 }, async () => await store.put(bytesOf('race', 'd'))))
  t.equal(results.filter((r) => !r.existed).length, 1)
})

void t.test('bad settings and an unreachable server are reported with codes', async (t) => {
  await t.rejects(S3BlobStore.open(options(newBucket(), { prefix: 'no-slash' })), { code: 'INVALID_INPUT' })
  await t.rejects(S3BlobStore.open(options(newBucket(), { partSize: MiB })), { code: 'INVALID_INPUT' })
  // s3rver checks the access key but not V4 signatures, so a wrong secret key cannot be shown here.
  await t.rejects(S3BlobStore.open(options(newBucket(), { accessKey: 'nobody' })), { code: 'CONFIG_INVALID' })

  const port = await closedPort()
  await t.rejects(S3BlobStore.open(options(newBucket(), { port })), { code: 'BLOB_UNAVAILABLE', message: /127\.0\.0\.1/ })
})

void t.test('a server that goes away makes reads and writes BLOB_UNAVAILABLE', async (t) => {
  const other = await startS3rver()
  t.teardown(other.close)
  const { endPoint, port, accessKey, secretKey } = other
  const store = await S3BlobStore.open({ endPoint, port, useSSL: false, accessKey, secretKey, bucket: 'gone', prefix: '', partSize: PART })
  t.teardown(async () => { await store.close() })
  const { sha256 } = await store.put(bytesOf('here, then not'))
  await other.close()
  await t.rejects(store.get(sha256), { code: 'BLOB_UNAVAILABLE' })
  await t.rejects(store.stat(sha256), { code: 'BLOB_UNAVAILABLE' })
  await t.rejects(store.put(bytesOf('new')), { code: 'BLOB_UNAVAILABLE' })
  await t.rejects(store.put(filled(6, MiB)), { code: 'BLOB_UNAVAILABLE' }, 'a multipart put')
  await t.rejects(store.delete(sha256), { code: 'BLOB_UNAVAILABLE' })
  await t.rejects(listAll(store), { code: 'BLOB_UNAVAILABLE' })
})

/** A port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
