// The record summariser the document store is given: a document whose
// shape defeats it is still summarised, empty, under the kind its key names.
import t from 'tap'
import { summarise } from '../../src/crdt/summary.ts'

t.test('a document that defeats the summariser gets an empty summary of its key\'s kind', async t => {
  const hostile = { get kind (): never { throw new Error('no shape') } }
  t.same(summarise('dataset/x', hostile as any), { kind: 'dataset', name: '', owner: '', tags: [], deleted: false, createdAt: '', updatedAt: '', blobs: [], sizes: [] })
})

t.test('the roster and node documents get a summary of their kind with the record fields empty', async t => {
  const s = summarise('mesh/m', { kind: 'mesh', id: 'm', nodes: {} } as any)
  t.match(s, { kind: 'mesh', name: '', tags: [], deleted: false, blobs: [], sizes: [] })
})
