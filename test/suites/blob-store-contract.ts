import { createHash } from 'node:crypto'
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type { Test } from 'tap'
import type { BlobInfo, BlobStore } from '../../src/blobs/blob-store.ts'

export interface BlobStoreFixture {
  store: BlobStore
  teardown: () => Promise<void>
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const MISSING_SHA256 = 'f'.repeat(64)
const MiB = 1024 * 1024

/**
 * The acceptance suite every BlobStore passes (filesystem, memory, MinIO/S3).
 * It uses only the interface, so a new store proves itself by calling this
 * with a `setup` that returns a fresh, empty store for each subtest.
 */
export function runBlobStoreContract (t: Test, name: string, setup: () => Promise<BlobStoreFixture>): void {
  void t.test(`${name} passes the BlobStore contract`, async (t) => {
    async function fresh (t: Test): Promise<BlobStore> {
      const { store, teardown } = await setup()
      t.teardown(async () => {
        await store.close()
        await teardown()
      })
      return store
    }

    void t.test('put then get round-trips the bytes under their sha256', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('hello, field site\n')
      const info = await store.put(chunked(bytes, 5))
      t.same(info, { sha256: sha256Of(bytes), size: bytes.byteLength, existed: false })
      t.same(await readAll(await store.get(info.sha256)), bytes)
      t.equal(await store.has(info.sha256), true)
      t.same(await store.stat(info.sha256), { sha256: info.sha256, size: bytes.byteLength })
    })

    void t.test('identical content is stored once and reported as existing', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('same bytes twice')
      const first = await store.put(chunked(bytes, 3))
      const second = await store.put(chunked(bytes, 7))
      t.equal(first.existed, false)
      t.equal(second.existed, true)
      t.equal(second.sha256, first.sha256)
      t.same(await listAll(store), [{ sha256: first.sha256, size: bytes.byteLength }])
    })

    void t.test('the empty blob is a blob', async (t) => {
      const store = await fresh(t)
      const info = await store.put(chunked(Buffer.alloc(0), 1))
      t.same(info, { sha256: EMPTY_SHA256, size: 0, existed: false })
      t.equal(await store.has(EMPTY_SHA256), true)
      t.equal((await readAll(await store.get(EMPTY_SHA256))).byteLength, 0)
    })

    void t.test('a matching expectedSha256 is accepted', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('promised bytes')
      const info = await store.put(chunked(bytes, 4), { expectedSha256: sha256Of(bytes) })
      t.equal(info.sha256, sha256Of(bytes))
    })

    void t.test('a mismatching expectedSha256 rejects and stores nothing', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('tampered bytes')
      const expected = sha256Of(Buffer.from('the bytes we were promised'))
      await t.rejects(store.put(chunked(bytes, 4), { expectedSha256: expected }), { code: 'INTEGRITY_MISMATCH' })
      t.equal(await store.has(sha256Of(bytes)), false)
      t.equal(await store.has(expected), false)
      t.same(await listAll(store), [])
    })

    void t.test('a mismatch leaves an already stored copy of the content intact', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('already here')
      await store.put(chunked(bytes, 4))
      await t.rejects(store.put(chunked(bytes, 4), { expectedSha256: MISSING_SHA256 }), { code: 'INTEGRITY_MISMATCH' })
      t.same(await readAll(await store.get(sha256Of(bytes))), bytes)
    })

    void t.test('a mismatch reports the expected and actual hashes and the size', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('what actually arrived')
      await t.rejects(store.put(chunked(bytes, 6), { expectedSha256: MISSING_SHA256 }), {
        code: 'INTEGRITY_MISMATCH',
        details: { expected: MISSING_SHA256, actual: sha256Of(bytes), size: bytes.byteLength }
      })
    })

    void t.test('a blob is invisible while its put is still streaming', async (t) => {
      const store = await fresh(t)
      // Larger than one default S3 part, so a multipart store has uploaded a part by the pause.
      const head = Buffer.alloc(16 * MiB + 1, 'head')
      const tail = Buffer.from('tail')
      const sha256 = sha256Of(Buffer.concat([head, tail]))
      const paused = Promise.withResolvers<void>()
      const resume = Promise.withResolvers<void>()
      async function * source (): AsyncGenerator<Uint8Array> {
        yield head
        // Runs once the store asks for the next chunk, that is after it has dealt with the head.
        paused.resolve()
        await resume.promise
        yield tail
      }
      const putting = store.put(source())
      await paused.promise
      t.equal(await store.has(sha256), false)
      t.equal(await store.stat(sha256), undefined)
      await t.rejects(store.get(sha256), { code: 'BLOB_NOT_FOUND' })
      t.same(await listAll(store), [])
      resume.resolve()
      t.same(await putting, { sha256, size: head.byteLength + tail.byteLength, existed: false })
      t.equal(await store.has(sha256), true)
    })

    void t.test('chunks that are views into larger buffers are stored as their own bytes', async (t) => {
      const store = await fresh(t)
      const backing = new Uint8Array(64).map((_, i) => i)
      const one = backing.subarray(3, 11)
      const single = await store.put((async function * () { yield one })())
      t.same(await readAll(await store.get(single.sha256)), Buffer.from(one))
      t.equal(single.sha256, sha256Of(one))
      const views = [new Uint8Array(backing.buffer, 20, 5), new Uint8Array(0), backing.subarray(40, 47)]
      const several = await store.put((async function * () { yield * views })())
      const expected = Buffer.concat(views)
      t.same(await readAll(await store.get(several.sha256)), expected)
      t.same(several, { sha256: sha256Of(expected), size: 12, existed: false })
    })

    void t.test('get from an offset returns the tail', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('0123456789')
      const { sha256 } = await store.put(chunked(bytes, 3))
      t.same(await readAll(await store.get(sha256, { offset: 0 })), bytes)
      t.same(await readAll(await store.get(sha256, { offset: 4 })), bytes.subarray(4))
      t.equal((await readAll(await store.get(sha256, { offset: 10 }))).byteLength, 0)
      await t.rejects(store.get(sha256, { offset: 11 }), { code: 'INVALID_INPUT' })
      await t.rejects(store.get(sha256, { offset: -1 }), { code: 'INVALID_INPUT' })
      await t.rejects(store.get(sha256, { offset: 1.5 }), { code: 'INVALID_INPUT' })
    })

    void t.test('a missing blob is absent everywhere', async (t) => {
      const store = await fresh(t)
      await t.rejects(store.get(MISSING_SHA256), { code: 'BLOB_NOT_FOUND' })
      t.equal(await store.has(MISSING_SHA256), false)
      t.equal(await store.stat(MISSING_SHA256), undefined)
      t.equal(await store.delete(MISSING_SHA256), false)
    })

    void t.test('get checks the offset before looking for the blob, and reports a missing one by its hash', async (t) => {
      const store = await fresh(t)
      await t.rejects(store.get(MISSING_SHA256, { offset: -1 }), { code: 'INVALID_INPUT', details: { offset: -1 } })
      await t.rejects(store.get(MISSING_SHA256, { offset: 5 }), { code: 'BLOB_NOT_FOUND', details: { sha256: MISSING_SHA256 } })
    })

    void t.test('an offset past the end reports the offset and the size', async (t) => {
      const store = await fresh(t)
      const { sha256 } = await store.put(chunked(Buffer.from('0123456789'), 4))
      await t.rejects(store.get(sha256, { offset: 12 }), { code: 'INVALID_INPUT', details: { offset: 12, size: 10 } })
    })

    void t.test('a malformed hash is INVALID_INPUT', async (t) => {
      const store = await fresh(t)
      const bad = ['', 'abc', 'A'.repeat(64), 'g'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), '../'.repeat(21) + 'a']
      for (const sha256 of bad) {
        await t.rejects(store.get(sha256), { code: 'INVALID_INPUT' }, `get ${JSON.stringify(sha256)}`)
        await t.rejects(store.has(sha256), { code: 'INVALID_INPUT' }, `has ${JSON.stringify(sha256)}`)
        await t.rejects(store.stat(sha256), { code: 'INVALID_INPUT' }, `stat ${JSON.stringify(sha256)}`)
        await t.rejects(store.delete(sha256), { code: 'INVALID_INPUT' }, `delete ${JSON.stringify(sha256)}`)
        await t.rejects(store.put(chunked(Buffer.from('x'), 1), { expectedSha256: sha256 }), { code: 'INVALID_INPUT' },
          `put expecting ${JSON.stringify(sha256)}`)
      }
      t.same(await listAll(store), [])
    })

    void t.test('a source yielding non-bytes is INVALID_INPUT and stores nothing', async (t) => {
      const store = await fresh(t)
      async function * strings (): AsyncGenerator<Uint8Array> {
        yield Buffer.from('ok')
        yield 'not bytes' as unknown as Uint8Array
      }
      await t.rejects(store.put(strings()), { code: 'INVALID_INPUT' })
      t.same(await listAll(store), [])
    })

    void t.test('adoptVerifiedFile, where offered, moves the file in under its hash', async (t) => {
      const store = await fresh(t)
      if (store.adoptVerifiedFile === undefined) {
        t.pass('this store copies through put instead')
        return
      }
      const dir = await scratchDir(t)
      const bytes = Buffer.from('fetched from a peer')
      const sha256 = sha256Of(bytes)
      const first = join(dir, 'first')
      const second = join(dir, 'second')
      await writeFile(first, bytes)
      await writeFile(second, bytes)
      t.same(await store.adoptVerifiedFile(first, sha256), { sha256, size: bytes.byteLength, existed: false })
      t.same(await readAll(await store.get(sha256)), bytes)
      t.same(await store.adoptVerifiedFile(second, sha256), { sha256, size: bytes.byteLength, existed: true })
      await t.rejects(access(first), { code: 'ENOENT' }, 'the adopted file is the store\'s now')
      await t.rejects(access(second), { code: 'ENOENT' }, 'a duplicate is dropped')
      t.same(await listAll(store), [{ sha256, size: bytes.byteLength }])
    })

    void t.test('adoptVerifiedFile, where offered, refuses a malformed hash and leaves the file', async (t) => {
      const store = await fresh(t)
      if (store.adoptVerifiedFile === undefined) {
        t.pass('this store copies through put instead')
        return
      }
      const path = join(await scratchDir(t), 'file')
      const bytes = Buffer.from('named wrongly')
      await writeFile(path, bytes)
      await t.rejects(store.adoptVerifiedFile(path, sha256Of(bytes).toUpperCase()), { code: 'INVALID_INPUT' })
      await access(path)
      t.same(await listAll(store), [])
    })

    void t.test('delete removes a blob, once', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.from('short-lived')
      const { sha256 } = await store.put(chunked(bytes, 4))
      t.equal(await store.delete(sha256), true)
      t.equal(await store.delete(sha256), false)
      t.equal(await store.has(sha256), false)
      await t.rejects(store.get(sha256), { code: 'BLOB_NOT_FOUND' })
      t.equal((await store.put(chunked(bytes, 4))).existed, false, 'a deleted blob can be stored again')
    })

    void t.test('list yields every blob once with its size', async (t) => {
      const store = await fresh(t)
      t.same(await listAll(store), [])
      const contents = ['alpha', 'beta', 'gamma', ''].map((s) => Buffer.from(s))
      for (const bytes of contents) await store.put(chunked(bytes, 2))
      await store.put(chunked(Buffer.from('beta'), 1))
      const expected = contents.map((bytes) => ({ sha256: sha256Of(bytes), size: bytes.byteLength }))
      t.same(await listAll(store), sortInfos(expected))
    })

    void t.test('a multi-MiB blob streams in and out', async (t) => {
      const store = await fresh(t)
      const size = 16 * MiB + 123
      const source = pseudoRandom(size, 64 * 1024 + 7)
      const info = await store.put(source)
      t.same(info, { sha256: source.sha256(), size, existed: false })
      const out = await hashStream(await store.get(info.sha256))
      t.same(out, { sha256: info.sha256, size })
      const tail = await hashStream(await store.get(info.sha256, { offset: 5 * MiB + 1 }))
      t.equal(tail.size, size - 5 * MiB - 1)
    })

    void t.test('concurrent puts of the same content all succeed and store one copy', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.alloc(256 * 1024, 'concurrent')
      const results = await Promise.all(Array.from({ length: 8 }, async () => await store.put(chunked(bytes, 16 * 1024))))
      for (const result of results) t.same({ sha256: result.sha256, size: result.size }, { sha256: sha256Of(bytes), size: bytes.byteLength })
      t.ok(results.some((r) => !r.existed), 'at least one put stored it')
      t.same(await listAll(store), [{ sha256: sha256Of(bytes), size: bytes.byteLength }])
      t.same(await readAll(await store.get(sha256Of(bytes))), bytes)
      t.equal((await store.put(chunked(bytes, 1024))).existed, true)
    })

    void t.test('a source that throws midway rejects the put and stores nothing', async (t) => {
      const store = await fresh(t)
      const bytes = Buffer.alloc(64 * 1024, 'partial')
      async function * failing (): AsyncGenerator<Uint8Array> {
        yield bytes.subarray(0, 32 * 1024)
        throw new Error('source failed midway')
      }
      await t.rejects(store.put(failing()), { message: 'source failed midway' })
      t.equal(await store.has(sha256Of(bytes.subarray(0, 32 * 1024))), false)
      t.same(await listAll(store), [])
    })

    void t.test('aborting a put midway rejects with AbortError and stores nothing', async (t) => {
      const store = await fresh(t)
      const controller = new AbortController()
      const chunk = Buffer.alloc(16 * 1024, 'abort')
      async function * endless (): AsyncGenerator<Uint8Array> {
        // Bounded so a store that ignores the signal fails the test instead of hanging it.
        for (let i = 0; i < 1000; i++) {
          if (i === 3) controller.abort()
          yield Buffer.from(chunk)
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
      await t.rejects(store.put(endless(), { signal: controller.signal }), { name: 'AbortError' })
      t.same(await listAll(store), [])
    })

    void t.test('aborting a put while the source is stalled rejects promptly', async (t) => {
      const store = await fresh(t)
      const controller = new AbortController()
      async function * stalled (): AsyncGenerator<Uint8Array> {
        yield Buffer.from('first bytes then silence')
        controller.abort()
        await new Promise(() => {})
      }
      let timer: NodeJS.Timeout | undefined
      const outcome = await Promise.race([
        store.put(stalled(), { signal: controller.signal }).then(() => 'resolved', (err: Error) => err.name),
        new Promise((resolve) => { timer = setTimeout(resolve, 5000, 'still pending after 5 s') })
      ])
      clearTimeout(timer)
      t.equal(outcome, 'AbortError')
      t.same(await listAll(store), [])
    })

    void t.test('an already aborted signal rejects without storing', async (t) => {
      const store = await fresh(t)
      await t.rejects(store.put(chunked(Buffer.from('never'), 1), { signal: AbortSignal.abort() }), { name: 'AbortError' })
      t.same(await listAll(store), [])
    })
  })
}

/** A directory beside the store's (the same filesystem, so an adopting store can rename from it). */
async function scratchDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dw-blob-contract-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

function sha256Of (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Yields copies, because a store may keep the chunks it is given. */
async function * chunked (bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield Buffer.from(bytes.subarray(i, i + size))
}

/** Deterministic bytes generated chunk by chunk, so a large blob is never held whole. */
function pseudoRandom (size: number, chunkSize: number): AsyncIterable<Uint8Array> & { sha256: () => string } {
  const hash = createHash('sha256')
  return {
    sha256: () => hash.copy().digest('hex'),
    async * [Symbol.asyncIterator] () {
      let state = 0x2545f491
      for (let done = 0; done < size; done += chunkSize) {
        const chunk = Buffer.allocUnsafe(Math.min(chunkSize, size - done))
        for (let i = 0; i < chunk.byteLength; i++) {
          state ^= state << 13
          state ^= state >>> 17
          state ^= state << 5
          chunk[i] = state & 0xff
        }
        hash.update(chunk)
        yield chunk
      }
    }
  }
}

async function readAll (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks)
}

async function hashStream (stream: Readable): Promise<{ sha256: string, size: number }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of stream) {
    hash.update(chunk as Uint8Array)
    size += (chunk as Uint8Array).byteLength
  }
  return { sha256: hash.digest('hex'), size }
}

async function listAll (store: BlobStore): Promise<BlobInfo[]> {
  const infos: BlobInfo[] = []
  for await (const info of store.list()) infos.push(info)
  return sortInfos(infos)
}

function sortInfos (infos: BlobInfo[]): BlobInfo[] {
  return [...infos].sort((a, b) => a.sha256.localeCompare(b.sha256))
}
