import t, { type Test } from 'tap'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { parseClaims } from '../../src/trust/claims.ts'
import { rosterKey } from '../../src/trust/roster.ts'
import type { RemoteDoc } from '../../src/crdt/doc-store.ts'
import type { Principal } from '../../src/warehouse/principal.ts'
import {
  changesOf, claimsOf, docOf, forge, headsOf, item, itemOf, saves, sync, trustNode,
  type SignedChange, type TrustNode
} from '../helpers/trust-fixture.ts'

/**
 * Every honest node reaches the same verdict on every change, whatever
 * order the changes reach it in, because a verdict reads only the change,
 * the document at the change's own dependencies and the roster and account
 * states the change's claims reference, never the receiver's current state.
 *
 * Nodes: F founds the mesh (full), enrols C as a contributor and O as
 * read-only (the observer), creates the member account alice and lets her
 * act on C. Then F revokes C while C, not yet aware, keeps editing.
 *
 * Expected verdicts:
 * - C's edits made concurrently with the revocation (C had not seen it)
 *   reference the roster state before it, where C is a contributor:
 *   ACCEPTED everywhere, even at nodes that already hold the revocation.
 * - C's edits made after C received the revocation reference a roster
 *   state that includes it: REFUSED everywhere ("was revoked"), and so is
 *   every change built on them ("depends on a refused change") and a
 *   dataset C creates after it.
 * - F's honest edits, including one built on C's concurrent edit: accepted.
 */
t.test('the same signed changes in different orders: same heads, same refusals everywhere', async t => {
  const F = await trustNode(t, 'F')
  const C = await trustNode(t, 'C')
  const O = await trustNode(t, 'O')

  // F founds the mesh and enrols C and O.
  const meshId = (await F.core.nodes.found('F')).meshId
  const roster = rosterKey(meshId)
  await F.core.nodes.setRole(F.admin, C.peerId, 'contributor', 'C')
  await F.core.nodes.setRole(F.admin, O.peerId, 'read-only', 'O')
  const aliceView = await F.core.users.create(F.admin, { username: 'alice', password: 'correct horse battery', role: 'member' })
  const alice: Principal = { userId: String(aliceView.id), username: 'alice', role: 'member' }
  const aliceKey = docKey('user', alice.userId)
  await F.core.docs.change(aliceKey, d => { d.sites = { [C.peerId]: { addedBy: F.admin.userId } } }, { author: F.admin.userId })
  const dF = docKey('dataset', String((await F.core.records.create(F.admin, 'dataset', { name: 'f data' })).id))
  await sync(F, C)
  await sync(F, O)
  t.equal(C.core.trust.meshId, meshId, 'C joined the mesh F founded')
  t.equal(await C.core.nodes.standing(C.peerId), 'contributor', 'C is a contributor')

  // C works under the roster that enrols it.
  const dC = docKey('dataset', String((await C.core.records.create(C.admin, 'dataset', { name: 'c data' })).id))
  const dA = docKey('dataset', String((await C.core.records.create(alice, 'dataset', { name: 'alice on c' })).id))
  const beforeRevocation = (await F.core.docs.meta(roster))?.heads ?? []

  // F revokes C and goes on editing.
  await F.core.nodes.revoke(F.admin, C.peerId)
  await F.core.records.patch(F.admin, 'dataset', idOf(dF), { name: 'f data, after revoking C' })
  const revocation = ((await F.core.docs.meta(roster))?.heads ?? [])[0] as string

  // Concurrently C, which has not seen the revocation, edits and creates.
  await C.core.records.patch(C.admin, 'dataset', idOf(dC), { name: 'c data, concurrent' })
  const concurrent = ((await C.core.docs.meta(dC))?.heads ?? [])[0] as string
  await C.core.records.patch(alice, 'dataset', idOf(dA), { description: 'alice, concurrent' })
  const aliceConcurrent = ((await C.core.docs.meta(dA))?.heads ?? [])[0] as string
  const dC2 = docKey('dataset', String((await C.core.records.create(C.admin, 'dataset', { name: 'c, concurrent create' })).id))
  const concurrentClaims = parseClaims((await changesOf(C, dC)).find(c => c.hash === concurrent)?.message)
  t.same([...(concurrentClaims?.r ?? [])].sort(), [...beforeRevocation].sort(), 'the concurrent edit references the roster before the revocation')

  // C learns of its revocation: its own gate now refuses its edits...
  await sync(F, C, [roster])
  await t.rejects(C.core.records.patch(C.admin, 'dataset', idOf(dC), { name: 'x' }), { code: 'FORBIDDEN', message: /was revoked/ }, 'C itself refuses its edits once it knows')
  // ...but a faulty C signs and sends edits anyway, claiming the roster state it holds.
  const postClaims = await claimsOf(C, C.admin.userId)
  t.ok(postClaims.r.includes(revocation), 'the post-revocation edit references the revocation')
  const actorC = { userId: C.admin.userId, at: new Date().toISOString() }
  const post = forge({ key: dC, base: await docOf(C, dC), message: postClaims, signer: C.key, fn: d => patchDataset(d, { name: 'c data, after revocation' }, actorC) })
  const postChild = forge({ key: dC, base: post.doc, message: postClaims, signer: C.key, fn: d => patchDataset(d, { name: 'c data, after revocation 2' }, actorC) })
  const dX = docKey('dataset', newId())
  const postCreate = forge({ key: dX, message: postClaims, signer: C.key, fn: d => initDataset(d, 'dataset', idOf(dX), { name: 'c, created after revocation' }, actorC) })
  const forged = new Map<string, SignedChange[]>([[dC, [post.change, postChild.change]], [dX, [postCreate.change]]])

  // F takes in all of C's work, then builds on C's concurrent edit.
  await F.admit([...await saves(C), ...[...forged.values()].flat().map(item)])
  await F.core.docs.flush()
  await F.core.records.patch(F.admin, 'dataset', idOf(dC), { description: 'reviewed on F' })

  // The set of signed changes, per document: F's (every honest change) plus the forged ones.
  const expected = await headsOf(F)
  const keys = Object.keys(expected)
  t.same(keys.sort(), [aliceKey, dA, dC, dC2, dF, roster].sort(), 'F holds every honest document and not the one created after the revocation')
  const pool = new Map<string, SignedChange[]>()
  for (const key of keys) pool.set(key, [...await changesOf(F, key), ...(forged.get(key) ?? [])])
  pool.set(dX, forged.get(dX) ?? [])
  const kindOrder = (key: string): number => key.startsWith('mesh/') ? 0 : key.startsWith('user/') ? 1 : 2
  const ordered = [...pool.keys()].sort((a, b) => kindOrder(a) - kindOrder(b) || (a < b ? -1 : 1))
  const changes = (key: string): SignedChange[] => [...(pool.get(key) ?? [])]
  const expectedRefused = [post.change.hash, postChild.change.hash, postCreate.change.hash].sort()
  const refusedSet = (n: TrustNode): string[] => [...new Set(n.refusals.map(r => r.hash))].sort()
  t.same(refusedSet(F), expectedRefused, 'F refused exactly the post-revocation changes')

  /** What every receiver must end with, whatever the order it got the changes in. */
  const check = async (t: Test, n: TrustNode): Promise<void> => {
    await n.core.docs.flush()
    const reasons = new Map(n.refusals.map(r => [r.hash, r.reason]))
    t.same(await headsOf(n), expected, 'same documents at the same heads as F')
    t.same(refusedSet(n), expectedRefused, 'the same refused changes as F')
    t.equal(n.core.docs.parkedCount, 0, 'nothing left parked')
    // Concurrent with the revocation, under a roster state that enrols C: accepted.
    t.ok(await n.core.docs.hasHeads(dC, [concurrent]), 'C\'s edit concurrent with its revocation is accepted')
    t.ok(await n.core.docs.hasHeads(dA, [aliceConcurrent]), 'alice\'s edit on C concurrent with the revocation is accepted')
    t.ok(await n.core.docs.meta(dC2) !== undefined, 'the dataset C created concurrently with the revocation is accepted')
    t.equal(await n.core.docs.read(dC, d => d?.name), 'c data, concurrent', 'the dataset shows C\'s concurrent edit')
    // After C received the revocation, under a roster state that includes it: refused.
    t.notOk(await n.core.docs.hasHeads(dC, [post.change.hash]), 'C\'s post-revocation edit is not stored')
    t.equal(await n.core.docs.meta(dX), undefined, 'the dataset C created after its revocation is not stored')
    t.match(reasons.get(post.change.hash), /was revoked/, 'the post-revocation edit is refused: C was revoked')
    t.match(reasons.get(postCreate.change.hash), /was revoked/, 'the post-revocation create is refused: C was revoked')
    t.match(reasons.get(postChild.change.hash), /depends on a refused change/, 'the edit built on it is refused with it')
  }

  t.test('J1: whole saves, one document per call, datasets first, roster last', async t => {
    const J1 = await trustNode(t, 'J1')
    const parked: number[] = []
    for (const key of [...ordered].reverse()) {
      const items: RemoteDoc[] = keys.includes(key) ? await saves(F, [key]) : []
      items.push(...(forged.get(key) ?? []).map(item))
      parked.push((await J1.admit(items)).parked)
    }
    t.ok(parked.slice(0, -1).every(n => n > 0), 'every document that arrived before the roster was parked')
    await check(t, J1)
  })

  t.test('J2: roster first, then accounts, change by change; then datasets interleaved, one change per call', async t => {
    const J2 = await trustNode(t, 'J2')
    for (const key of ordered.filter(k => kindOrder(k) < 2)) {
      for (const c of changes(key)) await J2.admit([item(c)])
    }
    const queues = ordered.filter(k => kindOrder(k) === 2).map(changes)
    while (queues.some(q => q.length > 0)) {
      for (const q of queues) {
        const c = q.shift()
        if (c !== undefined) await J2.admit([item(c)])
      }
    }
    await check(t, J2)
  })

  t.test('J3: every document as one chunk of its changes newest first; datasets first, roster last', async t => {
    const J3 = await trustNode(t, 'J3')
    for (const key of [...ordered].reverse()) await J3.admit([itemOf(changes(key).reverse())])
    await check(t, J3)
  })

  t.test('J4: change by change, newest first after each genesis (Automerge holds a change back until its dependencies arrive)', async t => {
    const J4 = await trustNode(t, 'J4')
    const errors: string[] = []
    const send = async (c: SignedChange): Promise<void> => {
      try { await J4.admit([item(c)]) } catch (err: any) { errors.push(`${c.key}: ${String(err?.message)}`) }
    }
    for (const key of ordered) {
      const list = changes(key)
      // A document's first delivery must hold its genesis: a store cannot load a document from a change with missing dependencies.
      await send(list[0] as SignedChange)
      for (const c of list.slice(1).reverse()) await send(c)
    }
    t.same(errors, [], 'every delivery decodes (a document whose genesis was refused cannot take its later changes)')
    await check(t, J4)
  })

  t.test('O (holding the roster before the revocation): everything in one call', async t => {
    await O.admit([...await saves(F), ...[...forged.values()].flat().map(item)])
    await check(t, O)
  })
})

function idOf (key: string): string {
  return key.slice(key.indexOf('/') + 1)
}
