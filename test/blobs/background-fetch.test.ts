// Background fetches skip peers their link profile holds back (not even
// asking them); a fetch someone waits for uses them, also when it joins a
// background fetch of the same blob; a window that closes mid-transfer
// pauses it, and the next attempt resumes from the partial file.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'
import { BlobFetcher } from '../../src/blobs/transfer/fetcher.ts'
import { serveBlob } from '../../src/blobs/transfer/serve.ts'
import { WantQueue } from '../../src/blobs/transfer/want-queue.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { tempDir } from '../helpers/tmp.ts'

async function setup (t: Parameters<typeof tempDir>[0], size: number): Promise<{ fetcher: BlobFetcher, store: MemoryBlobStore, sha: string, opened: () => number, refusal: { now: string | undefined } }> {
  const peerStore = new MemoryBlobStore()
  const bytes = randomBytes(size)
  const sha = createHash('sha256').update(bytes).digest('hex')
  await peerStore.put(Readable.from([bytes]))
  const store = new MemoryBlobStore()
  let opened = 0
  const refusal: { now: string | undefined } = { now: 'metered' }
  const fetcher = new BlobFetcher({
    store,
    partialDir: await tempDir(t, 'dw-partial-'),
    transport: {
      connectedPeers: () => ['far'],
      openStream: async () => {
        opened += 1
        const [client, server] = streamPair()
        void serveBlob(server, peerStore, { mayServe: async () => true }).catch(() => {})
        return client
      }
    },
    backgroundRefusal: () => refusal.now
  })
  return { fetcher, store, sha, opened: () => opened, refusal }
}

t.test('held back in the background, not even asked; fetched when someone waits', async t => {
  const { fetcher, store, sha, opened, refusal } = await setup(t, 1000)
  await t.rejects(fetcher.fetch(sha, { background: true }), { code: 'BLOB_UNAVAILABLE', message: /held back by link profiles: peer far is metered/, details: { heldBack: [{ peer: 'far', reason: 'metered' }] } })
  t.equal(opened(), 0, 'no stream opened to a held-back peer')

  // A want queue says why the file waits.
  const queue = new WantQueue(fetcher, store)
  t.teardown(() => { queue.stop() })
  await queue.want(sha, 1000)
  while (queue.pending()[0]?.waiting === undefined) await new Promise(resolve => setImmediate(resolve))
  t.match(queue.pending(), [{ sha256: sha, size: 1000, waiting: /metered/ }])

  // A waiting caller joins a background fetch in flight: one transfer, from the held-back peer.
  const background = fetcher.fetch(sha, { background: true })
  await fetcher.fetch(sha)
  await background
  t.equal(await store.has(sha), true, 'fetched for the caller who waits')
  t.equal(opened(), 2, 'one has, one get')
})

t.test('a window that closes pauses a background transfer; it resumes from its partial file', async t => {
  const size = 1024 * 1024 + 1000 // two chunks
  const { fetcher, store, sha, refusal } = await setup(t, size)
  refusal.now = undefined
  // The window closes as the first chunk lands.
  fetcher.on('progress', () => { if ((fetcher.running(sha)?.transfer.done ?? 0) > 0) refusal.now = 'outside its files window 22:00-06:00' })
  await t.rejects(fetcher.fetch(sha, { background: true }), { code: 'BLOB_UNAVAILABLE', message: /paused at \d+ of \d+ bytes: peer far is outside its files window/ })
  const kept = (await stat(fetcher.partialPath(sha))).size
  t.ok(kept > 0 && kept < size, 'part of it is kept')
  fetcher.removeAllListeners('progress')
  refusal.now = undefined
  await fetcher.fetch(sha, { background: true })
  t.equal(await store.has(sha), true, 'the next window completes it')
})
