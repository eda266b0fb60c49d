// A peer's transfer slots (`perPeer`) go in order (issue 11): a download
// someone waits for before pins, copies and queued files; then the smaller
// declared size (unknown last); then first come. A waiting caller who
// joins a queued background fetch moves it up with the waited-for ones.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'
import { BlobFetcher } from '../../src/blobs/transfer/fetcher.ts'
import { serveBlob } from '../../src/blobs/transfer/serve.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { tempDir } from '../helpers/tmp.ts'
import { waitFor, within } from '../peer/helpers.ts'

t.test('with one slot, queued transfers go waited-for first, then smaller, then earlier', async t => {
  const peerStore = new MemoryBlobStore()
  const blobs: Record<string, { sha: string, size: number }> = {}
  const names = new Map<string, string>()
  for (const [name, size] of [['running', 300_000], ['unknownSize', 1_000], ['smallBackground', 2_000], ['largeBackground', 200_000], ['smallWaited', 5_000]] as const) {
    const bytes = randomBytes(size)
    const sha = createHash('sha256').update(bytes).digest('hex')
    await peerStore.put(Readable.from([bytes]))
    blobs[name] = { sha, size }
    names.set(sha, name)
  }
  const blob = (name: string): { sha: string, size: number } => blobs[name] as { sha: string, size: number }

  // The server serves every request, but holds the first transfer until told.
  const gets: string[] = []
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const holdFirst = (stream: MessageStream): MessageStream => ({
    ...stream,
    read: async () => {
      const next = await stream.read()
      const request = next.value as { t?: string, sha256?: string } | undefined
      if (request?.t === 'get') {
        gets.push(names.get(request.sha256 as string) ?? '?')
        if (request.sha256 === blob('running').sha) await released
      }
      return next
    }
  })
  const store = new MemoryBlobStore()
  const fetcher = new BlobFetcher({
    store,
    partialDir: await tempDir(t, 'dw-partial-'),
    perPeer: 1,
    transport: {
      connectedPeers: () => ['far'],
      openStream: async () => {
        const [client, server] = streamPair()
        void serveBlob(holdFirst(server), peerStore, { mayServe: async () => true }).catch(() => {})
        return client
      }
    }
  })
  const queued = (name: string): boolean => fetcher.transfers().some(x => x.sha256 === blob(name).sha && x.queued === true)
  const fetches: Array<Promise<void>> = []
  const start = async (name: string, options: { background?: boolean, size?: boolean }): Promise<void> => {
    fetches.push(fetcher.fetch(blob(name).sha, { ...(options.size === false ? {} : { size: blob(name).size }), ...(options.background === true ? { background: true } : {}) }))
    await waitFor(() => queued(name), 10_000, `${name} queued`)
  }

  fetches.push(fetcher.fetch(blob('running').sha, { size: blob('running').size, background: true }))
  await waitFor(() => gets.length === 1, 10_000, 'the first transfer holds the slot')
  await start('unknownSize', { background: true, size: false })
  await start('smallBackground', { background: true })
  await start('largeBackground', { background: true })
  await start('smallWaited', {})
  t.match(fetcher.transfers().find(x => x.sha256 === blob('smallWaited').sha), { peer: 'far', done: 0, queued: true }, 'status shows what waits for a slot')
  // Someone now waits for the large background file: it moves up, and goes
  // after the small waited-for one only because that one is smaller.
  fetches.push(fetcher.fetch(blob('largeBackground').sha))
  await new Promise(resolve => setImmediate(resolve))

  release()
  await within(60_000, Promise.all(fetches), 'every fetch')
  t.same(gets, ['running', 'smallWaited', 'largeBackground', 'smallBackground', 'unknownSize'])
  for (const name of names.values()) t.equal(await store.has(blob(name).sha), true, `${name} fetched`)
  t.notOk(fetcher.transfers().some(x => x.queued === true), 'nothing left waiting')
})
