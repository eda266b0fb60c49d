import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import type { BlobInfo, BlobStore } from '../../src/blobs/blob-store.ts'
import { FsBlobStore } from '../../src/blobs/fs-store.ts'
import { runBlobStoreContract } from '../suites/blob-store-contract.ts'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dw-fs-store-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function * bytesOf (...chunks: string[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield Buffer.from(chunk)
}

async function listAll (store: BlobStore): Promise<BlobInfo[]> {
  const infos: BlobInfo[] = []
  for await (const info of store.list()) infos.push(info)
  return infos
}

runBlobStoreContract(t, 'FsBlobStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dw-fs-store-'))
  return {
    store: await FsBlobStore.open(dir),
    teardown: async () => { await rm(dir, { recursive: true, force: true }) }
  }
})

void t.test('a blob lives at <dir>/ab/cd/<sha256> and tmp/ is left empty', async (t) => {
  const dir = await tempDir(t)
  const store = await FsBlobStore.open(dir)
  const { sha256 } = await store.put(bytesOf('hello'))
  t.equal(sha256, createHash('sha256').update('hello').digest('hex'))
  t.equal((await readFile(join(dir, sha256.slice(0, 2), sha256.slice(2, 4), sha256))).toString(), 'hello')
  t.same(await readdir(join(dir, 'tmp')), [])
})

void t.test('open() removes temp files a crash left behind and keeps the blobs', async (t) => {
  const dir = await tempDir(t)
  const first = await FsBlobStore.open(dir)
  const { sha256 } = await first.put(bytesOf('survivor'))
  await first.close()
  await writeFile(join(dir, 'tmp', 'half-written.part'), 'partial bytes')
  await mkdir(join(dir, 'tmp', 'stray-dir'))
  await writeFile(join(dir, 'tmp', 'stray-dir', 'x'), 'x')

  const reopened = await FsBlobStore.open(dir)
  t.same(await readdir(join(dir, 'tmp')), [])
  t.same(await listAll(reopened), [{ sha256, size: 'survivor'.length }])
})

void t.test('open() creates a missing directory', async (t) => {
  const dir = join(await tempDir(t), 'nested', 'blobs')
  const store = await FsBlobStore.open(dir)
  t.equal((await store.put(bytesOf('x'))).existed, false)
})

void t.test('the constructor alone works on an empty directory', async (t) => {
  const dir = await tempDir(t)
  const store = new FsBlobStore(dir)
  const { sha256 } = await store.put(bytesOf('no open()'))
  t.equal(await store.has(sha256), true)
})

void t.test('failed puts leave no temp file behind', async (t) => {
  const dir = await tempDir(t)
  const store = await FsBlobStore.open(dir)
  await t.rejects(store.put(bytesOf('bad'), { expectedSha256: '0'.repeat(64) }), { code: 'INTEGRITY_MISMATCH' })
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield Buffer.from('some')
    throw new Error('boom')
  }
  await t.rejects(store.put(failing()), { message: 'boom' })
  const controller = new AbortController()
  async function * stalled (): AsyncGenerator<Uint8Array> {
    yield Buffer.from('some')
    controller.abort()
    await new Promise(() => {})
  }
  await t.rejects(store.put(stalled(), { signal: controller.signal }), { name: 'AbortError' })
  await store.put(bytesOf('dup'))
  await store.put(bytesOf('dup'))
  t.same(await readdir(join(dir, 'tmp')), [])
})

void t.test('concurrent puts of one content: exactly one stores it', async (t) => {
  const dir = await tempDir(t)
  const store = await FsBlobStore.open(dir)
  const results = await Promise.all(Array.from({ length: 16 }, async () => await store.put(bytesOf('race', 'd'))))
  t.equal(results.filter((r) => !r.existed).length, 1)
})

void t.test('list ignores files that are not blobs', async (t) => {
  const dir = await tempDir(t)
  const store = await FsBlobStore.open(dir)
  const { sha256 } = await store.put(bytesOf('real'))
  const misplaced = 'ab'.repeat(32)
  await writeFile(join(dir, 'README'), 'not a blob')
  await writeFile(join(dir, 'zz'), 'not a fan-out directory')
  await writeFile(join(dir, sha256.slice(0, 2), sha256.slice(2, 4), 'notes.txt'), 'x')
  await mkdir(join(dir, 'cd', 'ef'), { recursive: true })
  await writeFile(join(dir, 'cd', 'ef', misplaced), 'in the wrong fan-out directory')
  await writeFile(join(dir, 'tmp', 'pending.part'), 'in flight')
  t.same(await listAll(store), [{ sha256, size: 4 }])
})
