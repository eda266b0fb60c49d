// Wire feature `push` (issue 11): on a live link the server sends the
// changes of each updated document at once instead of offering its heads
// and waiting for a want. The puller applies what builds on what it holds,
// asks for the rest as after an offer, and still judges every change.
import t from 'tap'
import * as A from '@automerge/automerge'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { FEATURES, OFFER_BATCH, PROTOCOL_VERSION } from '../../src/peer/sync/messages.ts'
import type { DocStore } from '../../src/crdt/doc-store.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import { eventually } from '../helpers/mesh.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { addDatasets, testStore } from '../helpers/doc-store.ts'
import { headsOf, trustNode } from '../helpers/trust-fixture.ts'

/** Every message a side sends, as sent. */
function watched (stream: MessageStream): MessageStream & { sent: any[] } {
  const sent: any[] = []
  return { ...stream, sent, send: async (m: unknown) => { sent.push(m); await stream.send(m) } }
}

async function headsEqual (a: DocStore, b: DocStore): Promise<boolean> {
  const mine = await a.feedSince(0, OFFER_BATCH)
  const theirs = await b.metas(mine.map(e => e.key))
  const ours = await a.metas(mine.map(e => e.key))
  return mine.length > 0 && ours.every((m, i) => JSON.stringify([...(m?.heads ?? [])].sort()) === JSON.stringify([...(theirs[i]?.heads ?? [])].sort()))
}

const rename = async (store: DocStore, key: string, name: string): Promise<void> => {
  await store.change(key, d => { d.name = name })
}

t.test('updates to documents the puller holds are pushed and applied without a want; every change is still verified', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const made: string[] = []
  for (let i = 0; i < 4; i++) made.push(String((await F.core.records.create(F.admin, 'dataset', { name: `survey ${i}` })).id))
  const J = await trustNode(t, 'J')
  const [client, server] = streamPair()
  const serverSide = watched(server)
  const clientSide = watched(client)
  const abort = new AbortController()
  let caughtUp = 0
  const serving = serveSync(serverSide, F.core.docs, { compression: false, signal: abort.signal })
  const pulling = pullSync(clientSide, J.core.docs, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, onCaughtUp: () => { caughtUp += 1 }, compression: false })
  serving.catch(() => {})
  pulling.catch(() => {})
  await eventually(async () => caughtUp > 0 && JSON.stringify(await headsOf(J)) === JSON.stringify(await headsOf(F)), 30_000, 'J caught up')
  const before = serverSide.sent.length

  for (const [i, id] of made.entries()) await F.core.records.patch(F.admin, 'dataset', id, { name: `survey ${i}, checked` })
  await eventually(async () => JSON.stringify(await headsOf(J)) === JSON.stringify(await headsOf(F)), 30_000, 'J holds the updates')

  const after = serverSide.sent.slice(before)
  const pushes = after.filter(m => m.t === 'push')
  t.ok(pushes.length >= 1, 'the updates were pushed')
  t.same(after.filter(m => m.t === 'offer'), [], 'and not offered')
  t.equal(pushes.flatMap(m => m.items).length, 4, 'each updated document once')
  const pushBatches = new Set(pushes.map(m => m.batch))
  t.same(clientSide.sent.filter(m => m.t === 'want' && pushBatches.has(m.batch)), [], 'no want for a push the puller could apply')
  t.same(J.refusals, [], 'every pushed change passed judgement')
  t.equal((await J.core.records.get('dataset', made[0] as string)).name, 'survey 0, checked')
  abort.abort()
  await client.close()
})

t.test('a push the puller cannot build on is asked for with a want', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const [key] = await addDatasets(a, 1) as [string]
  const [client, server] = streamPair()
  const serverSide = watched(server)
  // The puller's acknowledgements wait at this gate while it is shut: the server pushes nothing more meanwhile.
  let open = true
  let opened: () => void = () => {}
  const gate = new Promise<void>(resolve => { opened = resolve })
  const clientSide = watched({ ...client, send: async (m: any) => { if (m.t === 'ack' && !open) await gate; await client.send(m) } })
  const abort = new AbortController()
  const serving = serveSync(serverSide, a, { compression: false, signal: abort.signal })
  const pulling = pullSync(clientSide, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, compression: false })
  serving.catch(() => {})
  pulling.catch(() => {})
  await eventually(async () => await headsEqual(a, b), 30_000, 'b holds the dataset')

  open = false
  await rename(a, key, 'first')
  await eventually(async () => (await b.read(key, d => d?.name)) === 'first', 30_000, 'the first update pushed and applied')
  // Two more updates while the push is unacknowledged: the next push holds only the last, which builds on the second.
  await rename(a, key, 'second')
  await rename(a, key, 'third')
  const pushesSoFar = serverSide.sent.filter(m => m.t === 'push').length
  open = true
  opened()
  await eventually(async () => await headsEqual(a, b), 30_000, 'b holds all three updates')

  const later = serverSide.sent.filter(m => m.t === 'push').slice(pushesSoFar)
  t.equal(later.length, 1, 'one more push')
  const wants = clientSide.sent.filter(m => m.t === 'want' && m.batch === later[0].batch)
  t.equal(wants.length, 1, 'which the puller answered with a want')
  t.equal(wants[0].items[0][0], key)
  t.equal(await b.read(key, d => d?.name), 'third')
  abort.abort()
  await client.close()
})

for (const older of ['puller', 'server'] as const) {
  t.test(`with a ${older} of the previous wire version, updates are offered, never pushed`, async t => {
    const a = await testStore(t)
    const b = await testStore(t)
    const keys = await addDatasets(a, 3)
    const [client, server] = streamPair()
    const serverSide = watched(server)
    const abort = new AbortController()
    let caughtUp = 0
    const previous = FEATURES.filter(f => f !== 'push')
    const serving = serveSync(serverSide, a, { compression: false, signal: abort.signal, ...(older === 'server' ? { features: previous } : {}) })
    const pulling = pullSync(client, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, compression: false, onCaughtUp: () => { caughtUp += 1 }, ...(older === 'puller' ? { features: previous } : {}) })
    serving.catch(() => {})
    pulling.catch(() => {})
    await eventually(async () => caughtUp > 0 && await headsEqual(a, b), 30_000, 'b caught up')
    for (const key of keys) await rename(a, key, 'renamed')
    await eventually(async () => await headsEqual(a, b), 30_000, 'b holds the updates')
    t.same(serverSide.sent[0].f, ['sig8', 'skip', 'hbin'])
    t.same(serverSide.sent.filter(m => m.t === 'push'), [])
    t.ok(serverSide.sent.filter(m => m.t === 'offer').length >= 2, 'the updates went by offer')
    abort.abort()
    await client.close()
  })
}

t.test('a document whose newest chunk leaves out one of its heads is offered, not pushed: the puller gets the concurrent change too', async t => {
  // a and b hold the dataset alike; each then changes it apart, and a takes
  // b's change. a's newest chunk is b's change alone, which b holds, while
  // a's own concurrent change sits in the chunk before. Pushed, b would skip
  // the document and never get a's change (a partition simulation found this).
  const a = await testStore(t)
  const b = await testStore(t)
  const [key] = await addDatasets(a, 1) as [string]
  await b.applyRemote([{ key, ...await a.changesSince(key, []) as { bytes: Uint8Array } }])
  const [base] = (await a.metas([key]))[0]?.heads ?? []
  await rename(a, key, 'from a')
  await b.change(key, d => { d.description = 'from b' })
  await a.applyRemote([{ key, ...await b.changesSince(key, [base as string]) as { bytes: Uint8Array } }])
  t.equal(((await a.metas([key]))[0]?.heads ?? []).length, 2, 'a holds two concurrent heads')
  t.same(await a.latestChanges([key]), [undefined], 'its newest chunk is not offered for a push')

  const [client, server] = streamPair()
  const serverSide = watched(server)
  const abort = new AbortController()
  const serving = serveSync(serverSide, a, { compression: false, signal: abort.signal })
  const pulling = pullSync(client, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, compression: false })
  serving.catch(() => {})
  pulling.catch(() => {})
  await eventually(async () => await headsEqual(a, b), 30_000, 'b holds both changes')
  t.same(await b.read(key, d => [d?.name, d?.description]), ['from a', 'from b'])
  t.same(serverSide.sent.filter(m => m.t === 'push'), [], 'nothing was pushed')
  abort.abort()
  await client.close()
})

t.test('a push that names a document twice, or holds anything but plain changes, ends the session and changes nothing', async t => {
  const source = A.change(A.from({ name: 'x' }), d => { d.name = 'y' })
  const key = 'dataset/00000000-0000-4000-8000-000000000001'
  const change = A.getLastLocalChange(source) as Uint8Array
  const cases: Array<[string, unknown[], RegExp]> = [
    ['twice', [[key, change, new Uint8Array(0)], [key, change, new Uint8Array(0)]], /names a document twice/],
    ['a whole document', [[key, A.save(source), new Uint8Array(0)]], /do not decode: a push holds only uncompressed changes/],
    ['not Automerge at all', [[key, new Uint8Array([1, 2, 3]), new Uint8Array(0)]], /do not decode/]
  ]
  for (const [what, items, reason] of cases) {
    const b = await testStore(t)
    const [client, server] = streamPair()
    const pulling = pullSync(client, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, compression: false })
    await server.read()
    await server.send({ t: 'welcome', v: PROTOCOL_VERSION, epoch: 'e', head: 1, from: 0, f: ['push'] })
    await server.send({ t: 'push', batch: 0, through: 1, items })
    await t.rejects(pulling, { code: 'INVALID_MESSAGE', message: reason }, what)
    t.same(await b.feedSince(0, 10), [], `${what}: nothing stored`)
  }
})

t.test('the server answers at most one want per push, for documents it pushed', async t => {
  for (const second of ['again', 'a key it did not push'] as const) {
    const a = await testStore(t)
    const [key, other] = await addDatasets(a, 2) as [string, string]
    const [client, server] = streamPair()
    const serving = serveSync(server, a, { compression: false })
    await client.send({ t: 'hello', v: PROTOCOL_VERSION, epoch: '', since: 0, live: true, f: ['push'] })
    const read = async (): Promise<any> => (await client.read()).value
    t.match(await read(), { t: 'welcome', f: ['push'] })
    const offer = await read()
    await client.send({ t: 'want', batch: offer.batch, items: offer.items.map(([k]: [string]) => [k, []]) })
    t.match(await read(), { t: 'docs', last: true })
    await client.send({ t: 'ack', through: offer.through })
    t.match(await read(), { t: 'caught-up' })
    await rename(a, key, 'changed')
    const push = await read()
    t.match(push, { t: 'push', items: [[key]] }, `${second}: the update is pushed`)
    if (second === 'again') {
      await client.send({ t: 'want', batch: push.batch, items: [[key, []]] })
      t.match(await read(), { t: 'docs', batch: push.batch })
      await client.send({ t: 'want', batch: push.batch, items: [[key, []]] })
      await t.rejects(serving, { code: 'INVALID_MESSAGE', message: /a second want/ })
    } else {
      await client.send({ t: 'want', batch: push.batch, items: [[other, []]] })
      await t.rejects(serving, { code: 'INVALID_MESSAGE', message: /not pushed/ })
    }
  }
})
