// The puller applies complete batches behind the one it is reading (the
// next batch is screened while the one before is admitted). A batch that
// fails to apply still ends the session at once, with its own error, even
// while the server has nothing more to say.
import t from 'tap'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { PROTOCOL_VERSION } from '../../src/peer/sync/messages.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { testStore } from '../helpers/doc-store.ts'

t.test('a batch that cannot be applied ends a live session while the server is silent', async t => {
  const b = await testStore(t)
  const [client, server] = streamPair()
  let saved = 0
  const pulling = pullSync(client, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => { saved += 1 }, compression: false })
  await server.read()
  await server.send({ t: 'welcome', v: PROTOCOL_VERSION, epoch: 'e', head: 1, from: 0 })
  const key = 'dataset/00000000-0000-4000-8000-000000000001'
  await server.send({ t: 'offer', batch: 0, through: 1, items: [[key, ['ab'.repeat(32)]]] })
  const want = await server.read()
  t.match(want.value, { t: 'want', batch: 0 })
  // Bytes that look like an Automerge chunk to no one; then nothing more.
  await server.send({ t: 'docs', batch: 0, items: [[key, new Uint8Array([0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 0, 9, 9]), new Uint8Array(0)]], last: true })
  await t.rejects(pulling, { code: 'INVALID_MESSAGE', message: /undecodable/ })
  t.equal(saved, 0, 'no checkpoint moved past it')
  t.same(await b.feedSince(0, 10), [], 'nothing stored')
})
