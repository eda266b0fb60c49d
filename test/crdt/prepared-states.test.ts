import t from 'tap'
import * as A from '@automerge/automerge'
import { newId } from '../../src/crdt/keys.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { DocChecker } from '../../src/crdt/doc-checker.ts'
import { isPlain, MAX_PREPARED_CHANGES, prepareStates, touchedMap, touchedPairs } from '../../src/crdt/prepared-states.ts'

/**
 * The states the checker's worker hands back in place of the node loading
 * a document (prepared-states.ts): exactly what the node would have judged
 * on, or nothing when the changes do not qualify.
 */
const actor = { userId: newId(), at: '2026-11-30T00:00:00.000Z' }
const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v))
const unlimited = (doc: A.Doc<any>): { numOps: number, maxOps: number } => ({ numOps: A.stats(doc).numOps, maxOps: Infinity })

function created (): A.Doc<any> {
  return A.change(A.init<any>(), d => { initDataset(d, 'dataset', newId(), { name: 'one', description: 'text', tags: ['a'], metadata: { rows: 1 } }, actor) })
}

t.test('a document new here, of one change: the document, touched everything', async t => {
  const doc = A.load<any>(A.save(created()))
  const prep = prepareStates(doc, undefined, [], undefined, unlimited(doc))
  if (prep === undefined) throw new Error('not prepared')
  t.same(prep.heads, A.getHeads(doc))
  t.same(prep.changes.map(c => c.hash), A.getHeads(doc))
  t.same(prep.changes[0]?.deps, [])
  t.same(json(prep.states[0]), json(doc))
  t.equal(prep.before, undefined)
  t.same(prep.touched, [[]], 'a first change is judged as touching everything')
  t.same(structuredClone(prep).states, prep.states, 'copies across threads as it is')
  t.equal(prep.ops, A.stats(doc).numOps, 'one state of the whole document')
  t.equal(prepareStates(doc, undefined, [], undefined, { numOps: A.stats(doc).numOps, maxOps: prep.ops - 1 }), undefined, 'none past the operations allowed')
})

t.test('a line of changes on a state held here: each state is the view at its change, each touched set the diff', async t => {
  const stored = A.load<any>(A.save(created()))
  const since = A.getHeads(stored)
  let theirs = A.clone(stored)
  theirs = A.change(theirs, d => { patchDataset(d, { name: 'two' }, actor) })
  theirs = A.change(theirs, d => { patchDataset(d, { addTags: ['b'], metadata: { rows: 2, site: 'x' } }, actor) })
  theirs = A.change(theirs, d => { patchDataset(d, { description: 'more text' }, actor) })
  const changes = A.getChangesSince(theirs, since)
  let patches: A.Patch[] = []
  const doc = A.loadIncremental(A.load<any>(A.save(stored)), concat(changes), { patchCallback: p => { patches = p } })
  const base = A.load<any>(A.save(stored))
  const prep = prepareStates(doc, base, since, patches, unlimited(doc))
  if (prep === undefined) throw new Error('not prepared')
  t.equal(prep.changes.length, 3)
  t.equal(prep.ops, A.stats(doc).numOps * 4, 'three states and the one before, each counted at the whole document')
  t.same(prep.changes[0]?.deps, since)
  t.same(json(prep.before), json(stored))
  for (const [i, c] of prep.changes.entries()) {
    t.same(json(prep.states[i]), json(A.view(doc, [c.hash])), `state after change ${i + 1}`)
    t.same(touchedMap(prep.touched[i] ?? []), touchedMap(touchedPairs(A.diff(doc, c.deps, [c.hash]))), `touched by change ${i + 1}`)
  }
  t.ok(touchedMap(prep.touched[1] ?? []).get('tags')?.has('b'), 'the tag added')
})

t.test('what the node loads itself: concurrent changes, special values, long histories, missing dependencies', async t => {
  const stored = A.load<any>(A.save(created()))
  const since = A.getHeads(stored)
  const left = A.change(A.clone(stored), d => { d.name = 'left' })
  const right = A.change(A.clone(stored), d => { d.owner = 'right' })
  const both = A.merge(A.clone(left), right)
  t.equal(prepareStates(both, stored, since, undefined, unlimited(both)), undefined, 'two changes on one state')

  const counter = A.change(A.clone(stored), d => { d.count = new A.Counter(1) })
  t.equal(prepareStates(counter, stored, since, undefined, unlimited(counter)), undefined, 'a counter')
  const scalar = A.change(A.clone(stored), d => { d.name = new A.ImmutableString('plain') })
  t.equal(prepareStates(scalar, stored, since, undefined, unlimited(scalar)), undefined, 'a scalar string')
  const bytes = A.change(A.clone(stored), d => { d.blob = new Uint8Array([1, 2]) })
  t.equal(prepareStates(bytes, stored, since, undefined, unlimited(bytes)), undefined, 'bytes')

  let long = A.clone(stored)
  for (let i = 0; i <= MAX_PREPARED_CHANGES; i++) long = A.change(long, d => { d.name = `n${i}` })
  t.equal(prepareStates(long, stored, since, undefined, unlimited(long)), undefined, `more than ${MAX_PREPARED_CHANGES} changes`)
  let enough = A.clone(stored)
  for (let i = 0; i < MAX_PREPARED_CHANGES; i++) enough = A.change(enough, d => { d.name = `n${i}` })
  t.equal(prepareStates(enough, stored, since, undefined, unlimited(enough))?.changes.length, MAX_PREPARED_CHANGES, `${MAX_PREPARED_CHANGES} changes`)

  const later = A.change(A.clone(left), d => { d.name = 'later' })
  const partial = A.load(A.getLastLocalChange(later) as Uint8Array, { allowMissingChanges: true })
  t.equal(prepareStates(partial, undefined, [], undefined, unlimited(partial)), undefined, 'a change whose dependencies are missing')
})

t.test('the worker prepares at most so many operations a job: a peer\'s large documents are left for the node to load', async t => {
  const checker = new DocChecker()
  checker.start()
  t.teardown(async () => { await checker.stop() })
  // Each ~5,000 operations; 100 of them are past the 400,000 a job may prepare.
  const big = A.save(A.change(A.init<any>(), d => { d.m = {}; for (let i = 0; i < 5000; i++) d.m[`k${i}`] = i }))
  const numOps = A.stats(A.load(big)).numOps
  const verdicts = await checker.check(Array.from({ length: 100 }, () => ({ bytes: big, prepare: true })))
  const prepared = verdicts.filter(v => v.ok && v.prepared !== undefined).length
  t.ok(verdicts.every(v => v.ok), 'every document passes')
  t.equal(prepared, Math.floor(400_000 / numOps), 'states for as many as fit')
  t.ok(verdicts.slice(prepared).every(v => v.ok && v.prepared === undefined), 'the rest without')
})

t.test('plain values only', async t => {
  t.ok(isPlain({ a: [1, 'x', true, null, { b: [] }] }))
  for (const [name, value] of [['NaN', { a: Number.NaN }], ['Infinity', [Infinity]], ['a date', { d: new Date() }], ['bytes', new Uint8Array(1)], ['a class', { c: new A.Counter(1) }], ['undefined', { u: undefined }], ['a bigint', 1n], ['a null prototype', Object.create(null)]] as const) {
    t.notOk(isPlain(value), name)
  }
})

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}
