import t from 'tap'
import * as A from '@automerge/automerge'
import { newId } from '../../src/crdt/keys.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { addVersion } from '../../src/crdt/records/versions.ts'
import { markDeleted, restore } from '../../src/crdt/records/common.ts'
import { touchedIn } from '../../src/trust/gate.ts'

/**
 * A change that is the only one new on the stored state is judged with
 * that state and the patches that merged it (JudgeContext.base), not a
 * view and a diff of its own. The rules must see the same either way:
 * for each kind of edit, the stored state equals the view at the change's
 * dependencies, and the fields and keys the patches touched equal those
 * of the diff, both when a peer's change is merged (loadIncremental) and
 * when it is made here (change).
 */
const actor = { userId: newId(), at: '2026-11-30T00:00:00.000Z' }
const file = { name: 'a.csv', sha256: 'ab'.repeat(32), size: 10, mediaType: 'text/csv' }
const edits: Array<[string, (doc: any) => void]> = [
  ['rename', doc => { patchDataset(doc, { name: 'renamed' }, actor) }],
  ['edit the description (text)', doc => { patchDataset(doc, { description: 'Field data, corrected: more rows' }, actor) }],
  ['add and remove tags', doc => { patchDataset(doc, { addTags: ['new'], removeTags: ['bench'] }, actor) }],
  ['patch metadata (add, change, remove)', doc => { patchDataset(doc, { metadata: { added: { deep: [1, 2] }, rows: 7, site: null } }, actor) }],
  ['change the owner and copies', doc => { patchDataset(doc, { owner: newId(), copies: 3 }, actor) }],
  ['add a version', doc => { addVersion(doc, [file], 'second', actor) }],
  ['delete', doc => { markDeleted(doc, actor) }],
  ['replace a map with a scalar', doc => { doc.metadata = 'not a map' }],
  ['a field no rule knows', doc => { doc.extra = { a: { b: 1 } } }]
]

function stored (): A.Doc<any> {
  const doc = A.change(A.init<any>(), d => {
    initDataset(d, 'dataset', newId(), { name: 'dataset 1', description: 'Field data set', tags: ['bench', 'site-1'], metadata: { site: 'site-1', rows: 5 } }, actor)
    addVersion(d, [file], 'first', actor)
  })
  // As a store holds it: loaded from its saved bytes.
  return A.load(A.save(doc))
}

for (const [name, edit] of edits) {
  t.test(name, async t => {
    const base = stored()
    const heads = A.getHeads(base)
    const baseJson = JSON.stringify(base)

    // Made on another node, merged here.
    const theirs = A.change(A.clone(base), edit)
    const change = A.getLastLocalChange(theirs) as Uint8Array
    let patches: A.Patch[] = []
    const merged = A.loadIncremental(base, change, { patchCallback: p => { patches = p } })
    const hash = A.getHeads(merged)[0] as string
    t.same(A.getHeads(merged), [hash], 'the change is the only head')
    t.same(JSON.parse(JSON.stringify(base)), JSON.parse(JSON.stringify(A.view(merged, heads))), 'the stored state read after the merge is the view at its dependencies')
    t.equal(JSON.stringify(base), baseJson, 'merging left the stored state as it was')
    t.same(touchedIn(patches), touchedIn(A.diff(merged, heads, [hash])), 'merge patches touch what the diff touches')

    // Made here.
    const mine = stored()
    let localPatches: A.Patch[] = []
    const after = A.change(mine, { patchCallback: p => { localPatches = p } }, edit)
    const localHash = A.getHeads(after)[0] as string
    t.same(touchedIn(localPatches), touchedIn(A.diff(after, A.getHeads(mine), [localHash])), 'change patches touch what the diff touches')
    t.ok(touchedIn(localPatches).size > 0, 'the edit touched something')
  })
}

t.test('restore after a delete', async t => {
  const deleted = A.load<any>(A.save(A.change(stored(), d => { markDeleted(d, actor) })))
  const heads = A.getHeads(deleted)
  const change = A.getLastLocalChange(A.change(A.clone(deleted), d => { restore(d, actor) })) as Uint8Array
  let patches: A.Patch[] = []
  const merged = A.loadIncremental(deleted, change, { patchCallback: p => { patches = p } })
  t.same(touchedIn(patches), touchedIn(A.diff(merged, heads, A.getHeads(merged))))
  t.ok(touchedIn(patches).has('deletions'))
})
