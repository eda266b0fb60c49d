import t from 'tap'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'
import { runBlobStoreContract } from '../suites/blob-store-contract.ts'

runBlobStoreContract(t, 'MemoryBlobStore', async () => ({
  store: new MemoryBlobStore(),
  teardown: async () => {}
}))

void t.test('stored bytes are a copy of the chunks put', async (t) => {
  const store = new MemoryBlobStore()
  const chunk = Buffer.from('original')
  const { sha256 } = await store.put((async function * () { yield chunk })())
  chunk.fill(0)
  const out: Buffer[] = []
  for await (const piece of await store.get(sha256)) out.push(piece as Buffer)
  t.equal(Buffer.concat(out).toString(), 'original')
})
