// The sync protocol between two real document stores over an in-memory
// stream pair: exactly what differs moves, checkpoints only advance past
// durable batches, and a cut session resumes.
import t from 'tap'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { markDeleted } from '../../src/crdt/records/common.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { PROTOCOL_VERSION } from '../../src/peer/sync/messages.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import type { Checkpoint } from '../../src/peer/sync/types.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { TEST_ACTOR, testStore } from '../helpers/doc-store.ts'

async function create (s: DocStore, n: number, prefix = 'd'): Promise<string[]> {
  const keys: string[] = []
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const id = newId()
    keys.push(docKey('dataset', id))
    await s.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, { name: `${prefix}${i}` }, TEST_ACTOR))
  }))
  return keys
}

async function pullOnce (from: DocStore, to: DocStore, cp: Checkpoint): Promise<{ cp: Checkpoint, received: number, sent: number }> {
  const [client, server] = streamPair()
  let saved = cp
  const serving = serveSync(server, from)
  const stats = await pullSync(client, to, cp, { live: false, saveCheckpoint: async c => { saved = c } })
  const served = await serving
  return { cp: saved, received: stats.recordsReceived, sent: served.recordsSent }
}

async function sameState (t: any, a: DocStore, b: DocStore, keys: string[]): Promise<void> {
  const ma = await a.metas(keys)
  const mb = await b.metas(keys)
  t.same(ma.map(m => m?.heads.sort()), mb.map(m => m?.heads.sort()), 'same heads for every record')
}

t.test('initial pull moves everything; a second moves nothing; an edit moves one', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const keys = await create(a, 600)
  let r = await pullOnce(a, b, { epoch: '', through: 0 })
  t.equal(r.received, 600)
  t.equal(r.cp.epoch, a.epoch)
  t.equal(r.cp.through, a.seq)
  await sameState(t, a, b, keys)

  r = await pullOnce(a, b, r.cp)
  t.equal(r.sent, 0, 'nothing new, nothing sent')

  await a.change(keys[5] as string, d => patchDataset(d, { name: 'edited' }, TEST_ACTOR))
  const again = await pullOnce(a, b, r.cp)
  t.equal(again.sent, 1, 'only the changed record')
  t.equal(await b.read(keys[5] as string, d => d?.name), 'edited')
})

t.test('two-way pulls converge concurrent edits, deletes and empty edits', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const keys = await create(a, 20)
  const cpB = (await pullOnce(a, b, { epoch: '', through: 0 })).cp
  await a.change(keys[0] as string, d => patchDataset(d, { name: 'from a' }, TEST_ACTOR))
  await b.change(keys[0] as string, d => patchDataset(d, { name: 'from b', metadata: { b: 1 } }, TEST_ACTOR))
  await b.change(keys[1] as string, d => markDeleted(d, TEST_ACTOR))
  const onlyB = await create(b, 3, 'b')
  const cpA = (await pullOnce(b, a, { epoch: '', through: 0 })).cp
  await pullOnce(a, b, cpB)
  await sameState(t, a, b, [...keys, ...onlyB])
  const winner = await a.read(keys[0] as string, d => d?.name)
  t.equal(await b.read(keys[0] as string, d => d?.name), winner)
  t.equal(await a.read(keys[0] as string, d => d?.metadata.b), 1)
  t.ok(await a.read(keys[1] as string, d => Object.keys(d?.deletions).length > 0), 'the delete replicated')
  const back = await pullOnce(b, a, cpA)
  t.equal(back.received, 0, 'echoes of our own changes are not re-applied')
})

t.test('a checkpoint from another epoch restarts from zero', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  await create(a, 10)
  const r = await pullOnce(a, b, { epoch: 'some-old-epoch', through: 999 })
  t.equal(r.received, 10)
  t.equal(r.cp.epoch, a.epoch)
})

t.test('a session cut midway resumes from the last durable checkpoint', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const keys = await create(a, 2000)
  const [client, server] = streamPair()
  const checkpoints: Checkpoint[] = []
  const serving = serveSync(server, a).catch(() => undefined)
  const pulling = pullSync(client, b, { epoch: '', through: 0 }, {
    live: false,
    saveCheckpoint: async c => {
      checkpoints.push(c)
      if (checkpoints.length === 3) client.abort(new Error('link cut'))
    }
  })
  await t.rejects(pulling)
  await serving
  const cut = checkpoints.at(-1) as Checkpoint
  t.ok(cut.through > 0 && cut.through < a.seq, `cut at ${cut.through} of ${a.seq}`)
  const resumed = await pullOnce(a, b, cut)
  t.ok(resumed.sent <= 2000 - 3 * 256 + 256, `resumed without starting over (sent ${resumed.sent})`)
  t.equal(resumed.cp.through, a.seq)
  await sameState(t, a, b, keys)
})

t.test('live pull delivers new changes as they happen', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const [client, server] = streamPair()
  const controller = new AbortController()
  const serving = serveSync(server, a, { signal: controller.signal }).catch(() => undefined)
  let caughtUp = 0
  const pulling = pullSync(client, b, { epoch: '', through: 0 }, { live: true, saveCheckpoint: async () => {}, onCaughtUp: () => { caughtUp += 1 } }).catch(() => undefined)
  const [key] = await create(a, 1)
  const deadline = Date.now() + 60_000
  while (await b.meta(key as string) === undefined && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(await b.meta(key as string), 'arrived while the session stayed open')
  t.ok(caughtUp >= 1)
  client.abort(new Error('done'))
  controller.abort()
  await Promise.all([serving, pulling])
})

t.test('malformed messages end the session with INVALID_MESSAGE', async t => {
  const a = await testStore(t)
  for (const bad of [{ t: 'hello', v: PROTOCOL_VERSION + 1, epoch: '', since: 0, live: false }, { t: 'hello', v: 1, epoch: '', since: 0, live: false }, { t: 'nonsense' }, 'x', { t: 'hello', v: PROTOCOL_VERSION, epoch: '', since: -1, live: false }]) {
    const [client, server] = streamPair()
    await client.send(bad)
    await t.rejects(serveSync(server, a), { code: 'INVALID_MESSAGE' })
  }
  const [client, server] = streamPair()
  await client.send({ t: 'hello', v: PROTOCOL_VERSION, epoch: '', since: 0, live: true })
  await client.send({ t: 'want', batch: 7, items: [] })
  await t.rejects(serveSync(server, a), { code: 'INVALID_MESSAGE' }, 'want for a batch never offered')
})

t.test('a document edited between its offer and its answer arrives with the heads of the bytes sent', async t => {
  const a = await testStore(t)
  const b = await testStore(t)
  const keys = await create(a, 5)
  const [client, server] = streamPair()
  // The puller's side of the stream: on the first offer, the sender's copy of
  // every offered record changes before the puller's want goes out.
  const edited = {
    ...client,
    async read () {
      const next = await client.read()
      const msg = next.value as { t?: string } | undefined
      if (msg?.t === 'offer' && !editedOnce) {
        editedOnce = true
        for (const key of keys) await a.change(key, d => patchDataset(d, { name: 'edited after the offer' }, TEST_ACTOR))
      }
      return next
    }
  }
  let editedOnce = false
  const serving = serveSync(server, a)
  // Uncompressed, so the hook above can read the offers.
  await pullSync(edited, b, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {}, compression: false })
  await serving
  const stored = await b.metas(keys)
  const actual = await Promise.all(keys.map(async key => await b.read(key, d => d?.name)))
  t.same(actual, keys.map(() => 'edited after the offer'), 'the puller holds the bytes sent, edits included')
  await sameState(t, a, b, keys)
  t.equal(stored.length, keys.length)
})

t.test('a puller takes only documents it wanted, each once per batch, and holds a bounded number of bytes', async t => {
  const a = await testStore(t)
  const [key] = await create(a, 1)
  const saved = (await a.savedMany([key as string]))[0] as { bytes: Uint8Array, sigs: Uint8Array }
  // A hostile server: offers one document, then sends it twice in the same batch.
  const b = await testStore(t)
  const [client, server] = streamPair()
  const hostile = (async () => {
    await server.read() // hello
    await server.send({ t: 'welcome', v: PROTOCOL_VERSION, epoch: 'e', head: 1, from: 0 })
    await server.send({ t: 'offer', batch: 0, through: 1, items: [[key, ['ab'.repeat(32)]]] })
    await server.read() // want
    await server.send({ t: 'docs', batch: 0, items: [[key, saved.bytes, saved.sigs]], last: false })
    await server.send({ t: 'docs', batch: 0, items: [[key, saved.bytes, saved.sigs]], last: false })
  })()
  await t.rejects(pullSync(client, b, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {} }), { code: 'INVALID_MESSAGE', message: /not wanted or came already/ })
  await hostile.catch(() => {})

  // A batch larger than the buffer still arrives whole, applied in parts:
  // 40 documents, one per docs message, against a 4 KiB buffer.
  const many = await testStore(t)
  const keys = await create(many, 40)
  const saves = await many.savedMany(keys)
  const c = await testStore(t)
  let applied = 0
  const counting = new Proxy(c, {
    get (target, prop) {
      if (prop === 'admitRemote') return async (items: any) => { applied++; return await target.admitRemote(items) }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const [client2, server2] = streamPair()
  const honest = (async () => {
    await server2.read() // hello
    await server2.send({ t: 'welcome', v: PROTOCOL_VERSION, epoch: 'e', head: 1, from: 0 })
    await server2.send({ t: 'offer', batch: 0, through: 1, items: keys.map((k, i) => [k, saves[i]?.meta?.heads]) })
    await server2.read() // want
    for (const [i, k] of keys.entries()) await server2.send({ t: 'docs', batch: 0, items: [[k, saves[i]?.bytes, saves[i]?.sigs]], last: i === keys.length - 1 })
    await server2.read() // ack
    await server2.send({ t: 'caught-up', head: 1 })
  })()
  const stats = await pullSync(client2, counting, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {}, maxBufferedBytes: 4096 })
  await honest
  t.equal(stats.recordsReceived, 40, 'every document arrived')
  t.ok(applied > 1, `applied in ${applied} parts, not held whole`)
  await sameState(t, many, c, keys)
})
