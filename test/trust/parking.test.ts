import t, { type Test } from 'tap'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { docKey } from '../../src/crdt/keys.ts'
import { patchDataset } from '../../src/crdt/records/dataset.ts'
import { patchUser } from '../../src/crdt/records/user.ts'
import { rosterKey, setNodeRole } from '../../src/trust/roster.ts'
import { ChangeSigner } from '../../src/trust/signatures.ts'
import { packSigs } from '../../src/crdt/sig-entries.ts'
import type { Principal } from '../../src/warehouse/principal.ts'
import { changesOf, claimsOf, docOf, forge, headsOf, item, itemOf, sync, trustNode, type SignedChange, type TrustNode } from '../helpers/trust-fixture.ts'

/**
 * A change that references a roster or account state the receiver does not
 * hold yet waits (parked, nothing stored) and is judged again when that
 * state arrives; a change referencing a state built on a refused change can
 * never be admitted and is refused rather than left waiting.
 */

type T = Test

interface Mesh { F: TrustNode, roster: string, ds: string }

/** F founds a mesh and creates a dataset. */
async function founded (t: T): Promise<Mesh> {
  const F = await trustNode(t, 'F')
  const roster = rosterKey((await F.core.nodes.found('F')).meshId)
  const ds = docKey('dataset', String((await F.core.records.create(F.admin, 'dataset', { name: 'd' })).id))
  return { F, roster, ds }
}

async function newPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** The changes of `key` that `from` holds and `to` lacks, as one item. */
async function newChanges (from: TrustNode, to: TrustNode, key: string): Promise<SignedChange[]> {
  const have = new Set<string>()
  const mine = await to.core.docs.meta(key)
  if (mine !== undefined) for (const c of await changesOf(to, key)) have.add(c.hash)
  return (await changesOf(from, key)).filter(c => !have.has(c.hash))
}

t.test('a change referencing a roster state the receiver lacks is parked, then admitted when the roster arrives', async t => {
  const { F, roster, ds } = await founded(t)
  const J = await trustNode(t, 'J')
  await sync(F, J)
  await F.core.nodes.setRole(F.admin, await newPeerId(), 'contributor', 'N')
  await F.core.records.patch(F.admin, 'dataset', ds.slice('dataset/'.length), { name: 'under the new roster' })
  const before = await headsOf(J)

  const result = await J.admit([itemOf(await newChanges(F, J, ds))])
  t.ok(result.parked > 0, 'parked')
  t.same(result.changed, [], 'nothing changed')
  t.same(await headsOf(J), before, 'nothing stored')
  t.equal(J.core.docs.parkedCount, result.parked, 'the store counts it as waiting')

  await sync(F, J, [roster])
  t.same(await headsOf(J), await headsOf(F), 'admitted once the roster arrived')
  t.equal(J.core.docs.parkedCount, 0, 'nothing left waiting')
  t.same(J.refusals, [], 'nothing refused')
})

t.test('a change referencing an account state the receiver lacks is parked, then admitted when the account arrives', async t => {
  const { F } = await founded(t)
  const view = await F.core.users.create(F.admin, { username: 'alice', password: 'correct horse battery', role: 'member' })
  const alice: Principal = { userId: String(view.id), username: 'alice', role: 'member' }
  const account = docKey('user', alice.userId)
  const own = docKey('dataset', String((await F.core.records.create(alice, 'dataset', { name: 'alice' })).id))
  const J = await trustNode(t, 'J')
  await sync(F, J)
  await F.core.docs.change(account, d => patchUser(d, { displayName: 'Alice' }, { userId: alice.userId, at: new Date().toISOString() }), { author: alice.userId })
  await F.core.records.patch(alice, 'dataset', own.slice('dataset/'.length), { name: 'under the new account state' })

  const result = await J.admit([itemOf(await newChanges(F, J, own))])
  t.ok(result.parked > 0, 'parked while the account state is missing')
  await sync(F, J, [account])
  t.same(await headsOf(J), await headsOf(F), 'admitted once the account arrived')
  t.equal(J.core.docs.parkedCount, 0, 'nothing left waiting')
})

/**
 * C, a contributor, makes itself full in its own roster (a change every
 * honest node refuses), then edits a dataset claiming that roster state.
 */
async function usurper (t: T): Promise<Mesh & { C: TrustNode, bad: SignedChange[], edit: SignedChange }> {
  const mesh = await founded(t)
  const { F, roster, ds } = mesh
  const C = await trustNode(t, 'C')
  await F.core.nodes.setRole(F.admin, C.peerId, 'contributor', 'C')
  await sync(F, C)
  const claims = await claimsOf(C, C.admin.userId)
  const at = new Date().toISOString()
  const bad = forge({ key: roster, base: await docOf(C, roster), message: claims, signer: C.key, fn: d => setNodeRole(d, C.peerId, 'full', C.admin.userId, at) })
  const worse = forge({ key: roster, base: bad.doc, message: claims, signer: C.key, fn: d => { d.nodes[C.peerId].name = 'C the great' } })
  // Claims a roster state built on the refused change.
  const edit = forge({ key: ds, base: await docOf(C, ds), message: { ...claims, r: [worse.change.hash] }, signer: C.key, fn: d => patchDataset(d, { name: 'usurped' }, { userId: C.admin.userId, at }) })
  return { ...mesh, C, bad: [bad.change, worse.change], edit: edit.change }
}

t.test('a change referencing a roster state built on a refused change is refused (the refusal came first)', async t => {
  const { F, bad, edit } = await usurper(t)
  const J = await trustNode(t, 'J')
  await sync(F, J)
  const first = await J.admit([itemOf(bad)])
  t.match(first.refused.map(r => r.reason), [/only full nodes change the roster/, /depends on a refused change/], 'the usurping roster changes are refused')
  const result = await J.admit([item(edit)])
  t.equal(result.parked, 0, 'not parked')
  t.match(result.refused, [{ hash: edit.hash, reason: /references a roster state built on a refused change/ }], 'refused')
})

t.test('a parked change is refused, not parked forever, once the state it waits for is refused', async t => {
  const { F, ds, bad, edit } = await usurper(t)
  const J = await trustNode(t, 'J')
  await sync(F, J)
  const waiting = await J.admit([item(edit)])
  t.equal(waiting.parked, 1, 'parked while the roster state is unknown')
  await J.admit([itemOf(bad)])
  await J.core.docs.flush()
  t.equal(J.core.docs.parkedCount, 0, 'no longer parked')
  t.match(J.refusals.find(r => r.hash === edit.hash), { reason: /references a roster state built on a refused change/ }, 'refused when judged again')
  t.notOk(await J.core.docs.hasHeads(ds, [edit.hash]), 'not stored')
})

// Found while writing these tests (each failed before the fix in DocStore.admitRemote):

t.test('a change delivered before its dependency keeps its signature', async t => {
  const { F, roster } = await founded(t)
  await F.core.nodes.setRole(F.admin, await newPeerId(), 'read-only', 'N1')
  await F.core.nodes.setRole(F.admin, await newPeerId(), 'read-only', 'N2')
  const [genesis, e1, e2] = await changesOf(F, roster) as [SignedChange, SignedChange, SignedChange]
  const J = await trustNode(t, 'J')
  await J.admit([item(genesis)])
  await J.admit([item(e2)]) // held back by Automerge until e1 arrives
  await J.admit([item(e1)])
  await J.core.docs.flush()
  t.same(J.refusals.map(r => r.reason), [], 'nothing refused')
})

t.test('a change whose parent was refused in an earlier call is refused too, so a state built on it is not waited for', async t => {
  const { F, bad, edit } = await usurper(t)
  const J = await trustNode(t, 'J')
  await sync(F, J)
  await J.admit([item(bad[0] as SignedChange)])
  await J.admit([item(bad[1] as SignedChange)]) // its parent was refused: Automerge holds it back
  await J.admit([item(edit)]) // references bad[1]
  await J.core.docs.flush()
  t.equal(J.core.docs.parkedCount, 0, 'nothing waits forever')
})

t.test('the same waiting change delivered twice is parked once', async t => {
  const { F, roster, ds } = await founded(t)
  const J = await trustNode(t, 'J')
  await sync(F, J)
  await F.core.nodes.setRole(F.admin, await newPeerId(), 'contributor', 'N')
  await F.core.records.patch(F.admin, 'dataset', ds.slice('dataset/'.length), { name: 'x' })
  const pending = itemOf(await newChanges(F, J, ds))
  await J.admit([pending])
  await J.admit([pending])
  await sync(F, J, [roster])
  t.equal(J.core.docs.parkedCount, 0, 'nothing counted as waiting once admitted')
})

t.test('a copy of a roster change with a bad signature does not doom the changes that reference it', async t => {
  const { F, roster, ds } = await founded(t)
  const J = await trustNode(t, 'J')
  await sync(F, J)
  await F.core.nodes.setRole(F.admin, await newPeerId(), 'contributor', 'N')
  await F.core.records.patch(F.admin, 'dataset', ds.slice('dataset/'.length), { name: 'under the new roster' })
  const [enrol] = await newChanges(F, J, roster) as [SignedChange]
  const forger = await generateKeyPair('Ed25519')
  const forgedSig = new ChangeSigner(forger).sign(enrol.hash)
  t.match((await J.admit([{ key: roster, bytes: enrol.bytes, sigs: packSigs([[enrol.hash, forgedSig]]) }])).refused, [{ reason: /the signature is not node/ }], 'the badly signed copy is refused')
  await J.admit([itemOf(await newChanges(F, J, ds))])
  await sync(F, J, [roster])
  t.same(await headsOf(J), await headsOf(F), 'the honest copy and the edit referencing it are admitted')
})
