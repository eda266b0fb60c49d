import t from 'tap'
import { docKey } from '../../src/crdt/keys.ts'
import { patchDataset } from '../../src/crdt/records/dataset.ts'
import { DocChecker, type CheckItem, type CheckVerdict } from '../../src/crdt/doc-checker.ts'
import { Quarantine } from '../../src/crdt/quarantine.ts'
import { jsonSublevel } from '../../src/db.ts'
import type { RemoteDoc } from '../../src/crdt/doc-store.ts'
import type { Principal } from '../../src/warehouse/principal.ts'
import { claimsOf, docOf, forge, headsOf, item, saves, trustNode, type TrustNode } from '../helpers/trust-fixture.ts'

/**
 * Documents the checker's worker prepared (prepared-states.ts) are judged
 * on its states and stored as received, without a load in the node's
 * thread. J takes that path; K, without a checker, loads every document.
 * Both must end the same as F, refuse the same changes, and store what a
 * later load reads back.
 */
const F = await trustNode(t, 'F')
const J = await trustNode(t, 'J')
const K = await trustNode(t, 'K', { guard: false })
await F.core.nodes.found('F')

// What J's checker hands back, per key.
const prepared = new Map<string, boolean>()
const checker = new DocChecker()
checker.start()
t.teardown(async () => { await checker.stop() })
J.core.docs.guardWith({
  checker: {
    check: async (items: CheckItem[]): Promise<CheckVerdict[]> => {
      const verdicts = await checker.check(items)
      verdicts.forEach(v => { if (v.ok && v.prepared !== undefined) prepared.set(String(v.prepared.changes.length), true) })
      return verdicts
    }
  } as unknown as DocChecker,
  quarantine: new Quarantine(jsonSublevel(J.core.db, 'quarantine')),
  maxOps: checker.limits.maxOps
})

async function member (username: string): Promise<Principal> {
  const view = await F.core.users.create(F.admin, { username, password: 'correct horse battery', role: 'member' })
  return { userId: String(view.id), username, role: 'member' }
}
const alice = await member('alice')
const bob = await member('bob')
const keys: string[] = []
for (let i = 0; i < 12; i++) {
  const id = String((await F.core.records.create(alice, 'dataset', { name: `set ${i}`, description: `about ${i}`, tags: ['t'], metadata: { i } })).id)
  // Some with a second change: a line of two.
  if (i % 3 === 0) await F.core.records.addVersion(alice, 'dataset', id, [], `v${i}`)
  keys.push(docKey('dataset', id))
}

async function contents (node: TrustNode): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(await headsOf(node))) out[key] = await node.core.docs.read(key, (doc, meta) => JSON.stringify([doc, meta?.summary]))
  return out
}

async function deliver (items: RemoteDoc[]): Promise<void> {
  for (const n of [J, K]) {
    const result = await n.admit(items)
    t.same(result.quarantined, [], `${n.name} quarantined nothing`)
    await n.core.docs.flush()
  }
}

t.test('an initial sync: the same documents, states and summaries as F', async t => {
  await deliver(await saves(F))
  t.ok(prepared.get('1') === true && prepared.get('2') === true, 'J was handed states for documents of one change and of two')
  const expected = await headsOf(F)
  t.same(await headsOf(J), expected)
  t.same(await headsOf(K), expected)
  const fromF = await contents(F)
  t.same(await contents(J), fromF, 'J reads what F holds')
  t.same(await contents(K), fromF, 'K reads what F holds')
  t.same(J.refusals, [])
})

t.test('changes to documents held: stored as the next chunk, read back whole', async t => {
  for (const key of keys.slice(0, 4)) await F.core.records.patch(alice, 'dataset', key.slice('dataset/'.length), { name: `renamed ${key}`, addTags: ['new'] })
  const latest = await F.core.docs.latestChanges(keys.slice(0, 4))
  await deliver(keys.slice(0, 4).map((key, i) => ({ key, bytes: latest[i]?.bytes as Uint8Array, sigs: latest[i]?.sigs as Uint8Array })))
  const metas = await J.core.docs.metas(keys.slice(0, 4))
  t.same(metas.map(m => m?.chunks), [1, 1, 1, 1], 'each change is a chunk after the stored document')
  t.same(await headsOf(J), await headsOf(F))
  t.same(await contents(J), await contents(F))
  t.same(await contents(K), await contents(F))
})

t.test('a forged change: refused the same on both paths, nothing stored', async t => {
  const key = keys[5] as string
  const before = await headsOf(J)
  const claims = await claimsOf(F, bob.userId)
  // Bob, a member, renames alice's dataset, signed by F's key as F would relay it.
  const bad = forge({ key, base: await docOf(F, key), message: claims, signer: F.key, fn: d => patchDataset(d, { name: 'bob was here' }, { userId: bob.userId, at: new Date().toISOString() }) })
  const onJ = (await J.admit([item(bad.change)])).refused
  const onK = (await K.admit([item(bad.change)])).refused
  t.equal(onJ.length, 1, 'J refused it')
  t.same(onJ.map(r => [r.hash, r.reason]), onK.map(r => [r.hash, r.reason]), 'for the same reason as K')
  t.same(await headsOf(J), before, 'J stored nothing')
  t.equal(await J.core.docs.read(key, doc => doc?.name), 'set 5')
})
