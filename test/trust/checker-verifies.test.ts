// The document checker's worker, which loads every document a peer sends
// before the node does, also verifies the new changes' signatures while it
// has the document loaded; the node's own thread then skips those. A
// signature that does not verify is still refused.
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

t.test('the worker verifies each new change it loads, and the node admits them', async t => {
  const F = await founded(t)
  const J = await guardedNode(t, 'J')
  const items = await everything(F)
  const roster = items.filter(i => i.key === F.roster)
  await J.admit(roster)
  const result = await J.admit(items.filter(i => i.key !== F.roster))
  t.equal(result.refused.length, 0)
  t.same(await headsOf(J), await headsOf(F))
  const verified = J.verdicts.flatMap(v => v.ok ? v.verified ?? [] : [])
  t.ok(verified.length >= items.length, `the worker verified ${verified.length} changes`)
})

t.test('a signature that does not verify is refused, whoever checks it', async t => {
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
  const vouched = new Set(J.verdicts.flatMap(v => v.ok ? v.verified ?? [] : []))
  t.same(result.refused.filter(r => vouched.has(r.hash)), [], 'the worker vouched for none of them')
})
