// One test per merge rule of the brief: two replicas of a document edited
// under different actor ids, then merged both ways.
import t from 'tap'
import * as A from '@automerge/automerge'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { addVersion, orderedVersions } from '../../src/crdt/records/versions.ts'
import { markDeleted, restore, isDeleted } from '../../src/crdt/records/common.ts'
import { initUser } from '../../src/crdt/records/user.ts'
import { recordView } from '../../src/crdt/merge-view.ts'
import { UsernameClaims } from '../../src/crdt/username-claims.ts'
import { newId } from '../../src/crdt/keys.ts'

const alice = { userId: 'alice', at: '2026-01-01T00:00:00.000Z' }
const bob = { userId: 'bob', at: '2026-01-01T00:00:01.000Z' }

function forked (init: (d: any) => void): [A.Doc<any>, A.Doc<any>] {
  const base = A.change(A.init<any>({ actor: 'aa'.repeat(16) }), init)
  const bytes = A.save(base)
  return [A.load(bytes, { actor: 'bb'.repeat(16) }), A.load(bytes, { actor: 'cc'.repeat(16) })]
}

function mergeBoth (a: A.Doc<any>, b: A.Doc<any>): [A.Doc<any>, A.Doc<any>] {
  const ab = A.merge(A.clone(a), A.clone(b))
  const ba = A.merge(A.clone(b), A.clone(a))
  return [ab, ba]
}

const dataset = (d: any): void => initDataset(d, 'dataset', newId(), { name: 'rain', description: 'daily rainfall', tags: ['climate'] }, alice)

t.test('different fields edited on two nodes: both survive', async t => {
  let [a, b] = forked(dataset)
  a = A.change(a, d => patchDataset(d, { name: 'rainfall' }, alice))
  b = A.change(b, d => patchDataset(d, { metadata: { station: 'north' } }, bob))
  for (const m of mergeBoth(a, b)) {
    const v = recordView(m)
    t.equal(v.name, 'rainfall')
    t.same(v.metadata, { station: 'north' })
    t.notOk('name' in v.conflicts)
  }
})

t.test('same scalar field: one deterministic winner, the other under conflicts', async t => {
  let [a, b] = forked(dataset)
  a = A.change(a, d => patchDataset(d, { name: 'from-a' }, alice))
  b = A.change(b, d => patchDataset(d, { name: 'from-b' }, bob))
  const [ab, ba] = mergeBoth(a, b)
  const v1 = recordView(ab)
  const v2 = recordView(ba)
  t.equal(v1.name, v2.name, 'same winner on both sides')
  const loser = v1.name === 'from-a' ? 'from-b' : 'from-a'
  t.same(v1.conflicts.name, [loser])
  t.same(v2.conflicts.name, [loser])
  const rewritten = A.change(ab, d => patchDataset(d, { name: 'settled' }, alice))
  t.notOk('name' in recordView(rewritten).conflicts, 'writing the field again clears the conflict')
})

t.test('descriptions are text: concurrent edits interleave', async t => {
  let [a, b] = forked(dataset)
  a = A.change(a, d => patchDataset(d, { description: 'daily rainfall in mm' }, alice))
  b = A.change(b, d => patchDataset(d, { description: 'North station daily rainfall' }, bob))
  const [ab, ba] = mergeBoth(a, b)
  t.equal(recordView(ab).description, 'North station daily rainfall in mm')
  t.equal(recordView(ba).description, recordView(ab).description)
})

t.test('tags: concurrent add and remove of the same tag, add wins', async t => {
  let [a, b] = forked(dataset)
  a = A.change(a, d => patchDataset(d, { addTags: ['climate'] }, alice))
  b = A.change(b, d => patchDataset(d, { removeTags: ['climate'] }, bob))
  for (const m of mergeBoth(a, b)) t.same(recordView(m).tags, ['climate'])
  b = A.change(b, d => patchDataset(d, { addTags: ['hydro'] }, bob))
  for (const m of mergeBoth(a, b)) t.same(recordView(m).tags, ['climate', 'hydro'])
})

t.test('versions: concurrent versions both kept, unique ids, deterministic order', async t => {
  let [a, b] = forked(dataset)
  const file = { name: 'a.csv', sha256: 'a'.repeat(64), size: 1, mediaType: 'text/csv' }
  let va: any, vb: any
  a = A.change(a, d => { va = addVersion(d, [file], 'from a', { userId: 'alice', at: '2026-02-01T00:00:00.000Z' }) })
  b = A.change(b, d => { vb = addVersion(d, [file], 'from b', { userId: 'bob', at: '2026-02-01T00:00:00.000Z' }) })
  t.not(va.id, vb.id)
  const [ab, ba] = mergeBoth(a, b)
  const order1 = orderedVersions(ab.versions).map(v => v.id)
  const order2 = orderedVersions(ba.versions).map(v => v.id)
  t.equal(order1.length, 2)
  t.same(order1, order2)
  t.same(order1, [va.id, vb.id].sort(), 'same time: ordered by id')
})

t.test('delete is a tombstone that wins over concurrent edits and restores', async t => {
  let [a, b] = forked(dataset)
  a = A.change(a, d => markDeleted(d, alice))
  b = A.change(b, d => patchDataset(d, { name: 'edited meanwhile' }, bob))
  let [ab] = mergeBoth(a, b)
  t.ok(isDeleted(ab), 'deleted despite the concurrent edit')
  t.equal(recordView(ab).deleted, true)

  // A restore on one side concurrent with a second delete on the other: still deleted.
  let [c, e] = forked(d => { dataset(d); markDeleted(d, alice) })
  c = A.change(c, d => restore(d, alice))
  e = A.change(e, d => markDeleted(d, bob))
  ;[ab] = mergeBoth(c, e)
  t.ok(isDeleted(ab), 'a delete the restore did not see survives it')
  const restored = A.change(ab, d => restore(d, alice))
  t.notOk(isDeleted(restored), 'an explicit restore after seeing every delete restores')
})

t.test('usernames: the earlier-created account keeps the name, the other is flagged', async t => {
  const early = { id: newId(), username: 'maria', createdAt: '2026-03-01T10:00:00.000Z', deleted: false }
  const late = { id: newId(), username: 'Maria', createdAt: '2026-03-01T10:05:00.000Z', deleted: false }
  // Built as two documents on two partitions; both survive the merge as distinct records.
  const docs = [early, late].map(u => A.change(A.init<any>(), d => initUser(d, u.id, { username: u.username, role: 'member', passwordHash: 'x' }, { userId: u.id, at: u.createdAt })))
  t.not(docs[0]?.id, docs[1]?.id)
  for (const order of [[late, early], [early, late]]) {
    const claims = new UsernameClaims()
    for (const c of order) claims.set(c)
    t.equal(claims.owner('MARIA'), early.id, 'login by name reaches the earlier account only')
    t.notOk(claims.isConflicted(early.id))
    t.ok(claims.isConflicted(late.id))
    t.same(claims.conflicts(), [{ username: 'maria', ids: [early.id, late.id] }])
  }
  const claims = new UsernameClaims()
  claims.set(early)
  claims.set({ ...late, username: 'maria2' })
  t.same(claims.conflicts(), [], 'renaming resolves it')
  t.equal(claims.owner('maria2'), late.id)
})

t.test('updatedBy is written only when the editor changes: an edit by the same user adds no text object for it', async t => {
  let doc = A.change(A.init<any>({ actor: 'aa'.repeat(16) }), dataset)
  const patchesOf = (next: (d: any) => void): string[] => {
    const heads = A.getHeads(doc)
    doc = A.change(doc, next)
    return A.diff(doc, heads, A.getHeads(doc)).map(p => String(p.path[0]))
  }
  const byAlice = patchesOf(d => patchDataset(d, { name: 'rainfall' }, { ...alice, at: '2026-01-02T00:00:00.000Z' }))
  t.ok(byAlice.includes('updatedAt'), 'updatedAt is stamped')
  t.notOk(byAlice.includes('updatedBy'), 'updatedBy already names alice: not written again')
  const byBob = patchesOf(d => patchDataset(d, { name: 'rain' }, bob))
  t.ok(byBob.includes('updatedBy'), 'another editor is written')
  t.equal(recordView(doc).updatedBy, 'bob')
  // User ids are UUIDs: 36 characters, 37 operations as text.
  const carol = { userId: '6f1c2e0a-1b2c-4d3e-8f40-5a6b7c8d9e0f', at: '2026-01-03T00:00:00.000Z' }
  const cost = (name: string): number => {
    const before = A.stats(doc).numOps
    doc = A.change(doc, d => patchDataset(d, { name }, carol))
    return A.stats(doc).numOps - before
  }
  const first = cost('rain 1')
  const again = cost('rain 2')
  t.equal(first - again, 37, `a rename by the user who made the last edit costs ${again} operations, ${first} when updatedBy changes`)
})
