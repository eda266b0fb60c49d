import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { FsBlobStore } from '../../src/blobs/fs-store.ts'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'

async function * bytesOf (...chunks: string[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield Buffer.from(chunk)
}

void t.test('only a store that implements _adopt offers adoptVerifiedFile', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dw-abstract-store-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  t.equal(typeof new FsBlobStore(dir).adoptVerifiedFile, 'function')
  const memory = new MemoryBlobStore()
  t.equal(memory.adoptVerifiedFile, undefined)
  t.notOk('adoptVerifiedFile' in memory, 'callers testing for it see it absent')
})

void t.test('a store that stops reading the source early stores nothing', async (t) => {
  class FirstChunkOnly extends MemoryBlobStore {
    protected override async _write (staged: Buffer[], chunks: AsyncIterable<Uint8Array>): Promise<void> {
      for await (const chunk of chunks) {
        staged.push(Buffer.from(chunk))
        break
      }
    }
  }
  const store = new FirstChunkOnly()
  await t.rejects(store.put(bytesOf('head', 'tail')), { message: /stopped reading the source/ })
  const listed = []
  for await (const info of store.list()) listed.push(info)
  t.same(listed, [])
})
