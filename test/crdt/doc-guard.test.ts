// Documents from peers are loaded first by the checker (a worker thread):
// one that breaks a limit is quarantined, never stored, never loaded in the
// node's own thread, and the same bytes are known again without a load.
import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import * as A from '@automerge/automerge'
import { openDb, jsonSublevel } from '../../src/db.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { DocChecker, type CheckItem } from '../../src/crdt/doc-checker.ts'
import { DEFAULT_DOC_LIMITS, resolveDocLimits, type DocLimits } from '../../src/crdt/doc-limits.ts'
import { Quarantine, type QuarantineEntry } from '../../src/crdt/quarantine.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { tempDir } from '../helpers/tmp.ts'
import { fuzzSeed, Rng } from '../fuzz/rng.ts'

/** 16 KB: two saves of a document holding an 8-million-character string, concatenated. Loading it takes gigabytes. */
const POISON = new URL('../fixtures/poisoned-document.bin', import.meta.url)

async function guarded (t: Test, limits: Partial<DocLimits> = {}): Promise<{ store: DocStore, checker: DocChecker, quarantine: Quarantine, checked: CheckItem[] }> {
  const db = await openDb(await tempDir(t))
  t.teardown(async () => { await db.close() })
  const store = await DocStore.open(db, { summarise })
  const checker = new DocChecker({ ...DEFAULT_DOC_LIMITS, ...limits })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  const quarantine = new Quarantine(jsonSublevel<QuarantineEntry>(db, 'quarantine'))
  const checked: CheckItem[] = []
  store.guardWith({ checker: { check: async items => { checked.push(...items); return await checker.check(items) } }, quarantine, maxOps: checker.limits.maxOps })
  return { store, checker, quarantine, checked }
}

const save = (value: Record<string, unknown>): Uint8Array => A.save(A.from(value))

t.test('a document that expands past the memory limit is quarantined; the rest of the batch applies', async t => {
  const { store, checker, quarantine, checked } = await guarded(t)
  const poison = new Uint8Array(await readFile(POISON))
  const rssBefore = process.memoryUsage.rss()
  const result = await store.admitRemote([
    { key: 'dataset/poison', bytes: poison },
    { key: 'dataset/fine', bytes: save({ name: 'fine' }) }
  ], { peer: 'peer-x' })
  t.same(result.changed, ['dataset/fine'], 'the honest document in the same batch is stored')
  t.equal(result.quarantined.length, 1)
  t.equal(result.quarantined[0]?.key, 'dataset/poison')
  t.match(result.quarantined[0]?.reason, /memory|operations|longer than/)
  t.equal(await store.meta('dataset/poison'), undefined, 'never stored')
  t.ok(process.memoryUsage.rss() - rssBefore < 1024 * 1024 * 1024, 'this process never grew by a gigabyte')
  t.ok(checker.restarts >= 1, 'the worker that loaded it was terminated')
  const [entry] = await quarantine.list()
  t.match(entry, { key: 'dataset/poison', peer: 'peer-x', size: poison.length, seen: 1 })

  // The same bytes again: known at once, not loaded again.
  checked.length = 0
  const again = await store.admitRemote([{ key: 'dataset/poison', bytes: poison }], { peer: 'peer-y' })
  t.same(again.changed, [])
  t.match(again.quarantined, [{ key: 'dataset/poison', reason: /quarantined before/ }])
  t.equal(checked.length, 0, 'the checker did not see it again')
  t.equal((await quarantine.list())[0]?.seen, 2)

  // The checker still works after losing a worker.
  t.same((await store.admitRemote([{ key: 'dataset/after', bytes: save({ name: 'after' }) }])).changed, ['dataset/after'])
  t.ok(await quarantine.drop(entry?.id as string), 'an admin can drop the entry')
  t.same(await quarantine.list(), [])
})

t.test('limits on operations and nesting', async t => {
  const { store } = await guarded(t, { maxOps: 1000, maxDepth: 8 })
  let deep: Record<string, unknown> = {}
  const root = deep
  for (let i = 0; i < 12; i++) { const next = {}; deep.x = next; deep = next }
  const result = await store.admitRemote([
    { key: 'dataset/deep', bytes: save({ metadata: root }) },
    { key: 'dataset/long', bytes: save({ text: 'y'.repeat(5000) }) },
    { key: 'dataset/shallow', bytes: save({ metadata: { a: { b: { c: 1 } } } }) }
  ])
  t.same(result.changed, ['dataset/shallow'])
  t.match(Object.fromEntries(result.quarantined.map(q => [q.key, q.reason])), {
    'dataset/deep': /nests more than 8 levels/,
    'dataset/long': /5\d\d\d operations, more than the limit of 1000/
  })
})

t.test('changes that push a stored document past a limit are judged with the document they join', async t => {
  const { store } = await guarded(t, { maxOps: 1000 })
  const base = A.from<{ items: number[] }>({ items: [] })
  t.same((await store.admitRemote([{ key: 'dataset/grow', bytes: A.save(base) }])).changed, ['dataset/grow'])
  // Alone, each step is small; together with what is stored, too big.
  const grown = A.change(A.clone(base), d => { for (let i = 0; i < 1500; i++) d.items.push(i) })
  const result = await store.admitRemote([{ key: 'dataset/grow', bytes: A.saveSince(grown, A.getHeads(base)) }])
  t.match(result.quarantined, [{ key: 'dataset/grow', reason: /operations/ }])
  t.same(await store.read('dataset/grow', d => d?.items.length), 0, 'the stored document is unchanged')
})

t.test('bytes that do not decode still reject the batch as a bad message', async t => {
  const { store, quarantine } = await guarded(t)
  await t.rejects(store.admitRemote([{ key: 'dataset/junk', bytes: new Uint8Array([0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]) }]), { code: 'INVALID_MESSAGE' })
  t.same(await quarantine.list(), [], 'a bad message is not quarantine material')
})

t.test('a worker that takes too long is stopped', async t => {
  // Memory unwatched: the 16 KB document grows by ~700 MB a second, so half a second is the limit it meets.
  const checker = new DocChecker({ ...DEFAULT_DOC_LIMITS, maxLoadMs: 500, maxLoadMemoryBytes: 64 * 1024 ** 3 })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  const [verdict] = await checker.check([{ bytes: new Uint8Array(await readFile(POISON)) }])
  t.match(verdict, { ok: false, quarantine: true, reason: /more than 500 ms of CPU time/ })
  t.same(await checker.check([{ bytes: save({ ok: 1 }) }]), [{ ok: true }], 'a fresh worker takes the next job')
})

t.test('configured limits are checked', async t => {
  t.equal(resolveDocLimits({ maxOps: 10 }).maxOps, 10)
  t.throws(() => resolveDocLimits({ maxOps: -1 }), /positive integer/)
  t.throws(() => resolveDocLimits({ maxOpz: 1 } as any), /not a document limit/)
})

t.test('fuzz: random documents around the limits get the verdict their shape deserves', async t => {
  const seed = fuzzSeed()
  t.comment(`seed ${seed} (FUZZ_SEED=${seed} replays it)`)
  const rng = new Rng(seed)
  const limits = { ...DEFAULT_DOC_LIMITS, maxOps: 400, maxDepth: 6 }
  const checker = new DocChecker(limits)
  checker.start()
  t.teardown(async () => { await checker.stop() })
  const cases: Array<{ bytes: Uint8Array, depth: number, ops: number }> = []
  for (let i = 0; i < 40; i++) {
    // A chain `depth` maps deep, with a list of `width` numbers at its end.
    const depth = rng.range(1, 10)
    const width = rng.range(0, 500)
    let leaf: any = { list: Array.from({ length: width }, (_, j) => j) }
    for (let d = 1; d < depth; d++) leaf = { x: leaf }
    const doc = A.from<any>({ root: leaf })
    cases.push({ bytes: A.save(doc), depth: depth + 1, ops: A.stats(doc).numOps })
    A.free(doc)
  }
  const verdicts = await checker.check(cases.map(c => ({ bytes: c.bytes })))
  for (const [i, c] of cases.entries()) {
    const shouldPass = c.ops <= limits.maxOps && c.depth <= limits.maxDepth
    t.equal(verdicts[i]?.ok, shouldPass, `case ${i}: depth ${c.depth}, ${c.ops} operations`)
  }
})

t.test('a local change that would take a document past the operation limit is refused, so peers never quarantine an honest document', async t => {
  const { store } = await guarded(t, { maxOps: 1000 })
  await store.create('dataset/big', d => { d.items = [] }, { local: false })
  await t.rejects(store.change('dataset/big', d => { for (let i = 0; i < 1500; i++) d.items.push(i) }), { code: 'PAYLOAD_TOO_LARGE' })
  t.equal(await store.read('dataset/big', d => d?.items.length), 0, 'nothing written')
  await store.change('dataset/big', d => { d.items.push(1) })
  t.equal(await store.read('dataset/big', d => d?.items.length), 1, 'smaller changes go on')
})

t.test('screened ahead: verdicts checked before admission are used, and a document that changed here since is checked again', async t => {
  const { store, quarantine, checked } = await guarded(t, { maxOps: 1000 })
  const existing = A.from<{ name: string, note?: string }>({ name: 'before' })
  await store.admitRemote([{ key: 'dataset/changes', bytes: A.save(existing) }])
  const later = A.change(A.clone(existing), d => { d.name = 'after' })
  const items = [
    { key: 'dataset/new', bytes: save({ name: 'new' }) },
    { key: 'dataset/long', bytes: save({ text: 'y'.repeat(5000) }) },
    { key: 'dataset/changes', bytes: A.saveSince(later, A.getHeads(existing)) }
  ]
  checked.length = 0
  const screening = store.screenRemote(items)
  await screening.verdicts
  t.equal(checked.length, 3, 'all three are checked while screening')
  t.same(await quarantine.list(), [], 'screening alone quarantines nothing')

  // Before admission, dataset/changes changes here: its screened verdict was for another state.
  await store.admitRemote([{ key: 'dataset/changes', bytes: A.save(A.change(A.clone(existing), d => { d.note = 'here' })) }])
  checked.length = 0
  const result = await store.admitRemote(items, { screening })
  t.same(checked.length, 1, 'only the document that changed since is checked again')
  t.ok(checked[0]?.base !== undefined, 'checked on the state it has now')
  t.same(result.changed.sort(), ['dataset/changes', 'dataset/new'])
  t.match(result.quarantined, [{ key: 'dataset/long', reason: /operations, more than the limit/ }])
  t.equal((await quarantine.list()).length, 1, 'the screened verdict quarantines at admission')
})

t.test('a screening that failed is checked again at admission', async t => {
  const { store, checker } = await guarded(t)
  await checker.stop()
  const items = [{ key: 'dataset/a', bytes: save({ name: 'a' }) }]
  const screening = store.screenRemote(items)
  t.same(await screening.verdicts, new Map(), 'a stopped checker gives no verdicts')
  checker.start()
  t.same((await store.admitRemote(items, { screening })).changed, ['dataset/a'])
})
