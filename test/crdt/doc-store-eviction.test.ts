// A document pushed out of the store's cache is freed at once (its wasm
// memory back to Automerge), but only once nothing uses it: changes,
// reads and merges that overlap evictions of the very documents they hold
// still see whole documents, and nothing written is lost.
import t from 'tap'
import * as A from '@automerge/automerge'
import { openDb } from '../../src/db.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { tempDir } from '../helpers/tmp.ts'

const actor = { userId: 'u1', at: '2026-01-01T00:00:00.000Z' }

t.test('a cache of two under concurrent changes, reads and merges of twenty documents', async t => {
  const db = await openDb(await tempDir(t))
  t.teardown(async () => { await db.close() })
  const store = await DocStore.open(db, { summarise, cacheSize: 2 })
  const ids = Array.from({ length: 20 }, () => newId())
  const keys = ids.map(id => docKey('dataset', id))
  await Promise.all(ids.map(async (id, i) => await store.create(keys[i] as string, d => initDataset(d, 'dataset', id, { name: 'v0' }, actor))))
  // Documents from elsewhere, merged while local changes push each other out of the cache.
  const remote = ids.map((id, i) => {
    const doc = A.change(A.load<any>(A.save(A.init())), (d: any) => { d.remoteNote = `r${i}` })
    return { key: keys[i] as string, bytes: A.save(doc), id }
  })
  const work: Array<Promise<unknown>> = []
  for (let round = 1; round <= 5; round++) {
    for (const [i, key] of keys.entries()) {
      work.push(store.change(key, d => patchDataset(d, { name: `v${round}` }, actor)))
      work.push(store.read(keys[(i * 7) % keys.length] as string, d => d?.name))
      if (round === 3) work.push(store.applyRemote([remote[i] as { key: string, bytes: Uint8Array }]))
    }
  }
  await Promise.all(work)
  await store.flush()
  for (const key of keys) {
    const view = await store.read(key, d => ({ name: d?.name, note: d?.remoteNote }))
    t.same(view, { name: 'v5', note: `r${keys.indexOf(key)}` }, `${key}: every change and the merge are there`)
  }
})
