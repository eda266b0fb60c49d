import t from 'tap'
import * as A from '@automerge/automerge'
import { openDb } from '../../src/db.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { tempDir } from '../helpers/tmp.ts'

const actor = { userId: 'u1', at: '2026-01-01T00:00:00.000Z' }

async function open (dir: string, compactAfter = 32): Promise<{ store: DocStore, close: () => Promise<void> }> {
  const db = await openDb(dir)
  const store = await DocStore.open(db, { summarise, compactAfter })
  return { store, close: async () => { await db.close() } }
}

t.test('create, change, reopen: documents and feed survive', async t => {
  const dir = await tempDir(t)
  const { store, close } = await open(dir, 4)
  const id = newId()
  const key = docKey('dataset', id)
  await store.create(key, d => initDataset(d, 'dataset', id, { name: 'a' }, actor))
  for (let i = 0; i < 10; i++) await store.change(key, d => patchDataset(d, { name: `n${i}` }, actor))
  const heads = (await store.meta(key))?.heads
  t.equal(store.seq, 11)
  const epoch = store.epoch
  await close()

  const again = await open(dir, 4)
  t.teardown(again.close)
  t.equal(again.store.seq, 11, 'sequence restored')
  t.equal(again.store.epoch, epoch, 'epoch kept')
  t.same((await again.store.meta(key))?.heads, heads)
  t.equal(await again.store.read(key, d => d?.name), 'n9')
  t.ok(((await again.store.meta(key))?.chunks ?? 99) < 4, 'compacted')
  t.same(await again.store.feedSince(0, 10), [{ seq: 11, key }], 'one feed entry per document')
  t.not(again.store.actor, store.actor, 'fresh actor per run')
  await again.store.change(key, d => patchDataset(d, { name: 'after' }, actor))
  t.equal(await again.store.read(key, d => d?.name), 'after')
})

t.test('feed orders documents by their latest change', async t => {
  const { store, close } = await open(await tempDir(t))
  t.teardown(close)
  const keys: string[] = []
  for (let i = 0; i < 3; i++) {
    const id = newId()
    keys.push(docKey('dataset', id))
    await store.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, { name: `d${i}` }, actor))
  }
  await store.change(keys[0] as string, d => patchDataset(d, { name: 'x' }, actor))
  t.same((await store.feedSince(0, 10)).map(e => e.key), [keys[1], keys[2], keys[0]])
  t.same((await store.feedSince(3, 10)).map(e => e.key), [keys[0]])
})

t.test('concurrent writers share fsyncs and all land', async t => {
  const { store, close } = await open(await tempDir(t))
  t.teardown(close)
  const ids = Array.from({ length: 200 }, () => newId())
  await Promise.all(ids.map(id => store.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, { name: id }, actor))))
  t.equal(store.seq, 200)
  t.equal((await store.feedSince(0, 1000)).length, 200)
})

t.test('applyRemote merges a peer\'s documents and ignores what it has', async t => {
  const a = await open(await tempDir(t))
  const b = await open(await tempDir(t))
  t.teardown(a.close)
  t.teardown(b.close)
  const id = newId()
  const key = docKey('dataset', id)
  await a.store.create(key, d => initDataset(d, 'dataset', id, { name: 'a' }, actor))
  const changed = await b.store.applyRemote([{ key, bytes: (await a.store.rawBytes(key)) as Uint8Array }])
  t.same(changed, [key])
  t.same((await b.store.meta(key))?.heads, (await a.store.meta(key))?.heads)
  t.same(await b.store.applyRemote([{ key, bytes: (await a.store.rawBytes(key)) as Uint8Array }]), [], 'no-op when nothing is new')

  await a.store.change(key, d => patchDataset(d, { name: 'edited on a' }, actor))
  await b.store.change(key, d => patchDataset(d, { metadata: { k: 1 } }, actor))
  const bHeads = (await b.store.meta(key))?.heads as string[]
  const fromA = await a.store.changesSince(key, bHeads)
  t.ok(fromA !== undefined, 'a cannot see b\'s heads, so it sends the document')
  await b.store.applyRemote([{ key, bytes: fromA?.bytes as Uint8Array }])
  await a.store.applyRemote([{ key, bytes: (await b.store.changesSince(key, (await a.store.meta(key))?.heads as string[]))?.bytes as Uint8Array }])
  t.same((await a.store.meta(key))?.heads.sort(), (await b.store.meta(key))?.heads.sort(), 'converged')
  t.same(await b.store.read(key, d => [d?.name, d?.metadata.k]), ['edited on a', 1])
})

t.test('undecodable bytes are refused and change nothing', async t => {
  const { store, close } = await open(await tempDir(t))
  t.teardown(close)
  const id = newId()
  const good = A.save(A.change(A.init<any>(), d => initDataset(d, 'dataset', id, { name: 'ok' }, actor)))
  await t.rejects(store.applyRemote([
    { key: docKey('dataset', id), bytes: good },
    { key: docKey('dataset', newId()), bytes: new Uint8Array([1, 2, 3, 4]) }
  ]), { code: 'INVALID_MESSAGE' })
  t.equal(store.seq, 0)
  t.equal(await store.meta(docKey('dataset', id)), undefined)
})


t.test('documents are stored with uncompressed columns, so a sync batch of them compresses', async t => {
  const { store, close } = await open(await tempDir(t), 2)
  t.teardown(close)
  const id = newId()
  const key = docKey('dataset', id)
  // Well past the 256 bytes from which Automerge.save deflates a column.
  const description = 'the same field notes, again and again; '.repeat(20)
  await store.create(key, d => initDataset(d, 'dataset', id, { name: 'a', description }, actor))
  const plain = (bytes: Uint8Array | undefined): boolean => Buffer.from(bytes ?? []).includes('again and again')
  t.ok(plain(await store.rawBytes(key)), 'a new document')
  // compactAfter 2: the second change folds the first one's chunk into a new snapshot.
  for (let i = 0; i < 2; i++) await store.change(key, d => patchDataset(d, { name: `n${i}` }, actor))
  t.equal((await store.meta(key))?.chunks, 0, 'compacted')
  t.ok(plain(await store.rawBytes(key)), 'a compacted document')
  t.notOk(plain(A.save(A.load(await store.rawBytes(key) as Uint8Array))), 'where Automerge.save would deflate it')
  t.equal(A.load<any>(await store.rawBytes(key) as Uint8Array).description, description, 'and it loads')
})

t.test('documents held as a snapshot and chunks, none of them in memory, take remote changes on top of all their chunks (more than one read group)', async t => {
  const db = await openDb(await tempDir(t))
  t.teardown(async () => { await db.close() })
  const writer = await DocStore.open(db, { summarise })
  const keys: string[] = []
  for (let i = 0; i < 40; i++) {
    const id = newId()
    const key = docKey('dataset', id)
    keys.push(key)
    await writer.create(key, d => initDataset(d, 'dataset', id, { name: `survey ${i}` }, { userId: 'u', at: '2026-01-01T00:00:00.000Z' }))
    await writer.change(key, d => { d.description = `first ${i}` })
    await writer.change(key, d => { d.tags = ['second'] })
  }
  const saved = await writer.savedMany(keys)
  t.ok(saved.every(s => s?.meta?.chunks === 2), 'each held as a snapshot and two chunks')
  // A peer's copies, one change further each.
  const items = saved.map((s, i) => {
    const doc = A.change(A.load<any>(s?.bytes as Uint8Array), d => { d.name = `renamed ${i}` })
    return { key: keys[i] as string, bytes: A.getLastLocalChange(doc) as Uint8Array }
  })
  await writer.flush()
  // A store opened afresh holds nothing in memory: every base is read from disk.
  const reader = await DocStore.open(db, { summarise })
  const result = await reader.admitRemote(items)
  t.equal(result.changed.length, 40)
  for (const [i, key] of keys.entries()) {
    const view = await reader.read(key, d => ({ name: d?.name, description: d?.description, tags: [...(d?.tags ?? [])] }))
    t.same(view, { name: `renamed ${i}`, description: `first ${i}`, tags: ['second'] }, `${key} keeps its chunks' changes and takes the peer's`)
  }
})
