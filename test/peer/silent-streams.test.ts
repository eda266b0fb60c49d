// A peer that opens a stream and never sends its first message must not hold
// one of the node's few inbound stream slots: both servers drop such a
// stream after FIRST_MESSAGE_MS (shortened here), and a prompt peer is
// unaffected by the timer.
import t from 'tap'
import { openDb } from '../../src/db.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { serveBlob } from '../../src/blobs/transfer/serve.ts'
import { MemoryBlobStore } from '../../src/blobs/memory-store.ts'
import { FIRST_MESSAGE_MS, readFirst } from '../../src/message-stream.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { tempDir } from '../helpers/tmp.ts'

t.equal(FIRST_MESSAGE_MS, 30_000, 'a running node gives a peer 30 s for its first message')

t.test('readFirst returns a prompt first message and leaves the stream open', async t => {
  const [client, server] = streamPair()
  await client.send({ hello: 1 })
  t.same(await readFirst(server, 200), { done: false, value: { hello: 1 } })
  await new Promise(resolve => setTimeout(resolve, 300))
  await client.send({ next: 2 })
  t.same(await server.read(), { done: false, value: { next: 2 } }, 'the timer was cleared: the stream still works')
})

t.test('readFirst aborts a silent stream, for both ends', async t => {
  const [client, server] = streamPair()
  const started = Date.now()
  await t.rejects(readFirst(server, 200), /no request within 0.2 s/)
  t.ok(Date.now() - started < 5000, 'dropped after the bound, not later')
  await t.rejects(client.read(), /no request within/, 'the silent peer sees its stream aborted')
})

t.test('the sync server drops a puller that never says hello', async t => {
  const db = await openDb(await tempDir(t))
  t.teardown(async () => { await db.close() })
  const store = await DocStore.open(db, { summarise })
  const [client, server] = streamPair()
  await t.rejects(serveSync(server, store, { firstMessageMs: 200 }), /no request within/)
  await t.rejects(client.read(), /no request within/)
})

t.test('the blob server drops a peer that never sends its request', async t => {
  const [client, server] = streamPair()
  await t.rejects(serveBlob(server, new MemoryBlobStore(), { mayServe: async () => true, firstMessageMs: 200 }), /no request within/)
  await t.rejects(client.read(), /no request within/)
})
