// A node that loads what peers send in the document checker's worker
// first (as every running node does) still verifies each new change's
// signature itself, whether the worker prepared the change's states or the
// node loaded the document: a signature that does not verify is refused.
import t, { type Test } from 'tap'
import { jsonSublevel } from '../../src/db.ts'
import { DocChecker, type CheckVerdict } from '../../src/crdt/doc-checker.ts'
import { Quarantine, type QuarantineEntry } from '../../src/crdt/quarantine.ts'
import { rosterKey } from '../../src/trust/roster.ts'
import type { RemoteDoc } from '../../src/crdt/doc-store.ts'
import { headsOf, trustNode, type TrustNode } from '../helpers/trust-fixture.ts'

/** A node whose store loads what peers send in the checker first; the verdicts are kept. */
async function guardedNode (t: Test, name: string): Promise<TrustNode & { verdicts: CheckVerdict[] }> {
  const node = await trustNode(t, name)
  const checker = new DocChecker()
  checker.start()
  t.teardown(async () => { await checker.stop() })
  const verdicts: CheckVerdict[] = []
  node.core.docs.guardWith({
    checker: { check: async items => { const got = await checker.check(items); verdicts.push(...got); return got } },
    quarantine: new Quarantine(jsonSublevel<QuarantineEntry>(node.core.db, 'quarantine')),
    maxOps: checker.limits.maxOps
  })
  return Object.assign(node, { verdicts })
}

/** Everything F holds, as a peer would send it. */
async function everything (F: TrustNode): Promise<RemoteDoc[]> {
  const feed = await F.core.docs.feedSince(0, 10_000)
  const saved = await F.core.docs.savedMany(feed.map(e => e.key))
  return feed.map((e, i) => ({ key: e.key, bytes: saved[i]?.bytes as Uint8Array, sigs: saved[i]?.sigs as Uint8Array }))
}

async function founded (t: Test): Promise<TrustNode & { roster: string }> {
  const F = await trustNode(t, 'F')
  const { meshId } = await F.core.nodes.found('F')
  for (let i = 0; i < 3; i++) await F.core.records.create(F.admin, 'dataset', { name: `survey ${i}` })
  return Object.assign(F, { roster: rosterKey(meshId) })
}

t.test('honest signatures: everything is admitted', async t => {
  const F = await founded(t)
  const J = await guardedNode(t, 'J')
  const items = await everything(F)
  await J.admit(items.filter(i => i.key === F.roster))
  const result = await J.admit(items.filter(i => i.key !== F.roster))
  t.equal(result.refused.length, 0)
  t.same(await headsOf(J), await headsOf(F))
  t.ok(J.verdicts.some(v => v.ok && v.prepared !== undefined), 'the worker prepared states for some')
})

t.test('a signature that does not verify is refused', async t => {
  const F = await founded(t)
  const J = await guardedNode(t, 'J')
  const items = await everything(F)
  await J.admit(items.filter(i => i.key === F.roster))
  const tampered = items.filter(i => i.key !== F.roster).map(i => {
    const sigs = new Uint8Array(i.sigs as Uint8Array)
    // The last byte of every signature (entries of 96 bytes: hash, then signature).
    for (let at = 95; at < sigs.length; at += 96) sigs[at] = (sigs[at] as number) ^ 1
    return { ...i, sigs }
  })
  const result = await J.admit(tampered)
  t.ok(result.refused.length >= 3, 'the datasets are refused')
  t.ok(result.refused.every(r => /signature is not node/.test(r.reason)), 'because of their signatures')
  t.ok(J.verdicts.some(v => v.ok && v.prepared !== undefined), 'some came with prepared states')
  t.same(await headsOf(J), Object.fromEntries(Object.entries(await headsOf(F)).filter(([k]) => !k.startsWith('dataset/'))), 'none of them is stored')
})
