// The size a record declares is checked like the hash: a peer whose copy
// has another size is not downloaded from, and a stream that runs long or
// short never completes.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { exactLength } from '../../src/blobs/exact-length.ts'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'
import { BlobFetcher } from '../../src/blobs/transfer/fetcher.ts'
import { serveBlob } from '../../src/blobs/transfer/serve.ts'
import { streamAsFetched } from '../../src/blobs/transfer/stream-as-fetched.ts'
import { WantQueue } from '../../src/blobs/transfer/want-queue.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { tempDir } from '../helpers/tmp.ts'

async function collect (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array))
  return Buffer.concat(chunks)
}

t.test('exactLength passes exactly the declared bytes, and fails a stream that runs long or short', async t => {
  const bytes = randomBytes(1000)
  t.ok((await collect(exactLength(Readable.from([bytes.subarray(0, 400), bytes.subarray(400)]), 1000))).equals(bytes))
  await t.rejects(collect(exactLength(Readable.from([bytes]), 999)), { code: 'INTEGRITY_MISMATCH', message: /more than the 999 bytes/ })
  await t.rejects(collect(exactLength(Readable.from([bytes]), 1001)), { code: 'INTEGRITY_MISMATCH', message: /ended at 1000 of the 1001 bytes/ })
  const failing = new Readable({ read () { this.destroy(new Error('disk gone')) } })
  await t.rejects(collect(exactLength(failing, 10)), /disk gone/, 'a failing source fails the guarded stream')
  t.ok((await collect(exactLength(Readable.from([]), 0))).equals(Buffer.alloc(0)), 'an empty file')
})

/** A fetcher whose one peer serves `store` over in-memory streams. */
async function fetcherWithPeer (t: Parameters<typeof tempDir>[0], peerStore: MemoryBlobStore): Promise<{ fetcher: BlobFetcher, store: MemoryBlobStore, partialDir: string, served: () => number }> {
  const store = new MemoryBlobStore()
  const partialDir = await tempDir(t, 'dw-partial-')
  let served = 0
  const fetcher = new BlobFetcher({
    store,
    partialDir,
    transport: {
      connectedPeers: () => ['peer'],
      openStream: async () => {
        const [client, server] = streamPair()
        void serveBlob(server, peerStore, { mayServe: async () => true, onBytes: n => { served += n } }).catch(() => {})
        return client
      }
    }
  })
  return { fetcher, store, partialDir, served: () => served }
}

t.test('a peer whose copy has another size than the record declares is not downloaded from', async t => {
  const peerStore = new MemoryBlobStore()
  const bytes = randomBytes(300_000)
  const sha = createHash('sha256').update(bytes).digest('hex')
  await peerStore.put(Readable.from([bytes]))
  const { fetcher, store, partialDir, served } = await fetcherWithPeer(t, peerStore)

  for (const declared of [bytes.length - 1, bytes.length + 1]) {
    await t.rejects(fetcher.fetch(sha, { size: declared }), { code: 'CONFLICT', message: /record declares/ }, `declared ${declared}`)
    await t.rejects(streamAsFetched(sha, store, fetcher, { size: declared }), { code: 'CONFLICT' }, 'rejected before any byte is streamed')
  }
  t.equal(served(), 0, 'not one byte came over')
  t.same(await readdir(partialDir), [], 'no partial file')
  t.equal(await store.has(sha), false, 'nothing stored')

  // The peer is not taken for a liar: with the right size, it serves.
  await fetcher.fetch(sha, { size: bytes.length })
  t.equal(await store.has(sha), true)
})

t.test('the want queue drops a blob whose record declares a size no peer has', async t => {
  const peerStore = new MemoryBlobStore()
  const bytes = randomBytes(1000)
  const sha = createHash('sha256').update(bytes).digest('hex')
  await peerStore.put(Readable.from([bytes]))
  const { fetcher, store } = await fetcherWithPeer(t, peerStore)
  const queue = new WantQueue(fetcher, store)
  t.teardown(() => { queue.stop() })
  await queue.want(sha, 10)
  const deadline = Date.now() + 10_000
  while (queue.pending().length > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(queue.pending(), [], 'dropped: retrying cannot help')
  t.equal(await store.has(sha), false)
  await queue.want(sha, bytes.length)
  const deadline2 = Date.now() + 10_000
  while (!await store.has(sha) && Date.now() < deadline2) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(await store.has(sha), true, 'a record declaring the true size gets it')
})
