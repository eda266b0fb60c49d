// On a live session, changes made while an offer is out gather into the
// next offer instead of one offer (and a want, documents and an
// acknowledgement) each (issue 11: on a thin link every message is a packet
// with its headers). The puller's wants are held back here, so the test
// does not depend on how fast anything runs.
import t from 'tap'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { OFFER_BATCH } from '../../src/peer/sync/messages.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import { eventually } from '../helpers/mesh.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { addDatasets, testStore } from '../helpers/doc-store.ts'

t.test('changes made while an offer is out go together in the next one', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const [client, server] = streamPair()
  const offers: number[] = []
  const watching: MessageStream = { ...server, send: async (m: any) => { if (m.t === 'offer') offers.push(m.items.length); await server.send(m) } }
  // The puller's wants wait at this gate while it is shut.
  let open = true
  let opened: () => void = () => {}
  const gate = new Promise<void>(resolve => { opened = resolve })
  const gated: MessageStream = { ...client, send: async (m: any) => { if (m.t === 'want' && !open) await gate; await client.send(m) } }
  const abort = new AbortController()
  let caughtUp = 0
  const serving = serveSync(watching, a, { compression: false, signal: abort.signal })
  const pulling = pullSync(gated, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, compression: false, onCaughtUp: () => { caughtUp += 1 } })
  // Both ends settle on a session that has nothing to say (serving ends when it is aborted).
  pulling.catch(() => {})
  serving.catch(() => {})
  await eventually(() => caughtUp > 0, 30_000, 'the empty session caught up')

  open = false
  await addDatasets(a, 1)
  await eventually(() => offers.length === 1, 30_000, 'the first change offered at once')
  await addDatasets(a, 29)
  t.same(offers, [1], 'nothing more is offered while that offer waits for its want')
  open = true
  opened()
  await eventually(async () => (await b.feedSince(0, OFFER_BATCH)).length === 30, 60_000, 'B holds all 30')
  t.same(offers, [1, 29], 'the other 29 changes went in one offer')

  abort.abort()
  await client.close()
})
