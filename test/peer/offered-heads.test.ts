// What a node received from a peer is not offered straight back to it
// (issue 11): its own pull from the peer notes the heads the peer offered,
// and its serving side skips documents it holds at exactly those heads.
// Anything else (a document changed here since, a peer that offered
// something else) is offered as before.
import t from 'tap'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { patchDataset } from '../../src/crdt/records/dataset.ts'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { OfferedHeads } from '../../src/peer/sync/offered-heads.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import type { Feature } from '../../src/peer/sync/messages.ts'
import type { Checkpoint } from '../../src/peer/sync/types.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { TEST_ACTOR, addDatasets, testStore } from '../helpers/doc-store.ts'

/** One whole pull of `to` from `from`; returns the keys the server offered. */
async function pull (from: DocStore, to: DocStore, options: { offered?: OfferedHeads, peerHas?: OfferedHeads } = {}): Promise<string[]> {
  const [client, server] = streamPair()
  const offeredKeys: string[] = []
  const watching: MessageStream = { ...server, send: async (m: any) => { if (m.t === 'offer') offeredKeys.push(...m.items.map((i: [string]) => i[0])); await server.send(m) } }
  const peerHas = options.peerHas
  const serving = serveSync(watching, from, { compression: false, ...(peerHas === undefined ? {} : { peerHas: (key: string, heads: string[]) => peerHas.has(key, heads) }) })
  const offered = options.offered
  await pullSync(client, to, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {}, compression: false, ...(offered === undefined ? {} : { onOffered: items => { offered.offered(items) } }) })
  await serving
  return offeredKeys
}

t.test('records received from a peer are not offered back to it', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const keys = await addDatasets(a, 20)
  // B's view of A: what A offered B in B's pull.
  const aOffered = new OfferedHeads()
  t.equal((await pull(a, b, { offered: aOffered })).length, 20, 'A offers B everything')
  // B changes one record after receiving it; A changes nothing.
  await b.change(keys[0] as string, d => patchDataset(d, { name: 'renamed on B' }, TEST_ACTOR))
  const back = await pull(b, a, { peerHas: aOffered })
  t.same(back, [keys[0]], 'B offers A only what A does not hold exactly')
  t.equal(await a.read(keys[0] as string, d => d?.name), 'renamed on B', 'and A gets it')

  // Without the note, every record goes back (the echo this avoids).
  const c = await testStore(t)
  await pull(a, c)
  t.equal((await pull(c, a)).length, 20, 'without it, all 20 are offered back')
})

t.test('an echo is skipped once, and only for exactly the heads offered', t => {
  const seen = new OfferedHeads()
  seen.offered([['dataset/x', ['b', 'a']]])
  t.notOk(seen.has('dataset/x', ['a']), 'other heads')
  t.ok(seen.has('dataset/x', ['a', 'b']), 'the same heads in any order')
  t.notOk(seen.has('dataset/x', ['a', 'b']), 'used up')
  seen.offered([['dataset/y', ['c']]])
  seen.clear()
  t.notOk(seen.has('dataset/y', ['c']), 'cleared with the connection')
  t.end()
})

t.test('skip: what the puller holds is not offered at all, and its checkpoint still reaches the head', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  await addDatasets(a, 20)
  const aOffered = new OfferedHeads()
  await pull(a, b, { offered: aOffered })
  /** B serves A, which holds all B has: with and without `skip` on A's side. */
  const back = async (features: Feature[]): Promise<{ types: string[], checkpoint: Checkpoint | undefined }> => {
    const [client, server] = streamPair()
    const types: string[] = []
    const watching: MessageStream = { ...server, send: async (m: any) => { types.push(m.t); await server.send(m) } }
    const serving = serveSync(watching, b, { compression: false, peerHas: (key, heads) => aOffered.has(key, heads) })
    let checkpoint: Checkpoint | undefined
    await pullSync(client, a, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async c => { checkpoint = c }, compression: false, features })
    await serving
    return { types, checkpoint }
  }
  const skipping = await back(['skip'])
  t.same(skipping.types, ['welcome', 'caught-up'], 'no offer, want or documents: only where the feed ends')
  t.equal(skipping.checkpoint?.through, b.seq, 'the checkpoint is at the head all the same')
  // A puller of the previous wire version gets the empty offer, as before. The notes were used up: take them again.
  aOffered.offered(await Promise.all((await b.feedSince(0, 100)).map(async e => [e.key, (await b.metas([e.key]))[0]?.heads ?? []] as [string, string[]])))
  const older = await back([])
  t.same(older.types.toSorted(), ['caught-up', 'docs', 'offer', 'welcome'], 'an offer with no items, and its empty documents')
  t.equal(older.checkpoint?.through, b.seq)
})
