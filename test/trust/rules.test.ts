import t from 'tap'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { initDataset, patchDataset } from '../../src/crdt/records/dataset.ts'
import { initUser, patchUser } from '../../src/crdt/records/user.ts'
import { addVersion } from '../../src/crdt/records/versions.ts'
import { initRoster, localAdminIdOf, rosterKey, setNodeRole } from '../../src/trust/roster.ts'
import type { Refusal, RemoteDoc } from '../../src/crdt/doc-store.ts'
import type { Principal } from '../../src/warehouse/principal.ts'
import { changesOf, claimsOf, docOf, forge, item, sync, trustNode, type TrustNode } from '../helpers/trust-fixture.ts'
import { ChangeSigner } from '../../src/trust/signatures.ts'
import { packSigs } from '../../src/crdt/sig-entries.ts'

/**
 * The permission rules, case by case, through real stores: a change made
 * here is judged before it is written (the store throws FORBIDDEN with the
 * rule's reason), and a change from a peer comes back from admitRemote as
 * a refusal with the reason. Each case is one assertion.
 *
 * The mesh: F founds it (full); C is a contributor, O read-only, X was
 * enrolled then revoked, U holds the roster but was never enrolled. F's
 * admin created the member accounts alice, bob and carol; alice owns a
 * dataset with one version.
 */
const F = await trustNode(t, 'F')
const C = await trustNode(t, 'C')
const O = await trustNode(t, 'O')
const X = await trustNode(t, 'X')
const U = await trustNode(t, 'U')
const meshId = (await F.core.nodes.found('F')).meshId
const roster = rosterKey(meshId)
await F.core.nodes.setRole(F.admin, C.peerId, 'contributor', 'C')
await F.core.nodes.setRole(F.admin, O.peerId, 'read-only', 'O')
await F.core.nodes.setRole(F.admin, X.peerId, 'contributor', 'X')
await F.core.nodes.revoke(F.admin, X.peerId)

async function member (username: string): Promise<Principal> {
  const view = await F.core.users.create(F.admin, { username, password: 'correct horse battery', role: 'member' })
  return { userId: String(view.id), username, role: 'member' }
}
const alice = await member('alice')
const bob = await member('bob')
const carol = await member('carol')
const ds = docKey('dataset', String((await F.core.records.create(alice, 'dataset', { name: 'alice data' })).id))
const v1 = (await F.core.records.addVersion(alice, 'dataset', idOf(ds), [], 'v1')).id
for (const n of [C, O, X, U]) await sync(F, n)

function idOf (key: string): string {
  return key.slice(key.indexOf('/') + 1)
}
const at = (): string => new Date().toISOString()
const as = (p: Principal | string): { userId: string, at: string } => ({ userId: typeof p === 'string' ? p : p.userId, at: at() })
const forbidden = (reason: RegExp): { code: string, message: RegExp } => ({ code: 'FORBIDDEN', message: reason })

/** What `to` says of changes sent to it (one refusal expected). */
async function refusalOf (to: TrustNode, items: RemoteDoc[]): Promise<Refusal | undefined> {
  return (await to.admit(items)).refused[0]
}

// Content records.

t.test('a member edits their own dataset: accepted', async t => {
  await t.resolves(F.core.docs.change(ds, d => patchDataset(d, { description: 'mine' }, as(alice)), { author: alice.userId }))
})

t.test('a member edits another member\'s dataset: refused', async t => {
  await t.rejects(F.core.docs.change(ds, d => patchDataset(d, { name: 'taken' }, as(bob)), { author: bob.userId }),
    forbidden(/only the owner of this dataset or an admin can change it/))
})

t.test('an owner who is not an admin changes the owner: refused', async t => {
  await t.rejects(F.core.docs.change(ds, d => patchDataset(d, { owner: bob.userId }, as(alice)), { author: alice.userId }),
    forbidden(/only an admin can change the owner/))
})

t.test('a version whose author is not the signed author: refused', async t => {
  // Written by hand, so only the versions rule can refuse it.
  await t.rejects(F.core.docs.change(ds, d => {
    const id = newId()
    d.versions[id] = { id, files: [], note: 'by bob?', author: bob.userId, createdAt: new Date().toISOString() }
  }, { author: alice.userId }), forbidden(/versions entries must name the author of the change as author/))
  // Through addVersion, which also stamps updatedBy with the author it is given.
  await t.rejects(F.core.docs.change(ds, d => { addVersion(d, [], 'by bob?', as(bob)) }, { author: alice.userId }),
    forbidden(/updatedBy must be the author of the change|versions entries must name the author/))
})

t.test('a version once written cannot change: refused', async t => {
  await t.rejects(F.core.docs.change(ds, d => { d.versions[v1].note = 'rewritten' }, { author: alice.userId }),
    forbidden(/versions entries cannot change once written/))
})

t.test('createdBy cannot change: refused', async t => {
  await t.rejects(F.core.docs.change(ds, d => { d.createdBy = bob.userId }, { author: alice.userId }), forbidden(/createdBy cannot change/))
})

t.test('kind cannot change: refused', async t => {
  await t.rejects(F.core.docs.change(ds, d => { d.kind = 'model' }, { author: alice.userId }), forbidden(/kind cannot change/))
})

t.test('id cannot change: refused', async t => {
  await t.rejects(F.core.docs.change(ds, d => { d.id = newId() }, { author: alice.userId }), forbidden(/id cannot change/))
})

// Node standing.

t.test('a contributor node cannot create accounts: refused', async t => {
  const id = newId()
  await t.rejects(C.core.docs.create(docKey('user', id), d => initUser(d, id, { username: 'dave', role: 'member', passwordHash: 'h' }, as(C.admin)), { author: C.admin.userId }),
    forbidden(/contributor node: only full nodes change accounts/))
})

async function createDatasetOn (n: TrustNode): Promise<unknown> {
  const id = newId()
  return await n.core.docs.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, { name: n.name }, as(n.admin)), { author: n.admin.userId })
}

t.test('a read-only node: refused', async t => {
  await t.rejects(createDatasetOn(O), forbidden(/is read-only/))
})

t.test('a revoked node: refused', async t => {
  await t.rejects(createDatasetOn(X), forbidden(/was revoked/))
})

t.test('a node the roster does not name: refused', async t => {
  await t.rejects(createDatasetOn(U), forbidden(/is not in the mesh roster/))
})

// Accounts.

t.test('users change their own password: accepted', async t => {
  await t.resolves(F.core.docs.change(docKey('user', alice.userId), d => patchUser(d, { passwordHash: 'a new hash' }, as(alice)), { author: alice.userId }))
})

t.test('users change their own role: refused', async t => {
  await t.rejects(F.core.docs.change(docKey('user', alice.userId), d => patchUser(d, { role: 'admin' }, as(alice)), { author: alice.userId }),
    forbidden(/only an admin can change role/))
})

t.test('an admin changes a role on a full node: accepted', async t => {
  await t.resolves(F.core.docs.change(docKey('user', carol.userId), d => patchUser(d, { role: 'admin' }, as(F.admin)), { author: F.admin.userId }))
})

// The roster.

t.test('a roster genesis by a node other than the one the mesh id names: refused', async t => {
  const Z = await trustNode(t, 'Z')
  const rival = forge({
    key: roster,
    message: { v: 1, u: localAdminIdOf(Z.peerId), n: Z.peerId, r: [], h: [], l: 1 },
    signer: Z.key,
    fn: d => initRoster(d, meshId, Z.peerId, localAdminIdOf(Z.peerId), at(), 'Z')
  })
  t.match(await refusalOf(F, [item(rival.change)]), { reason: /a mesh roster can only be founded by the node its id names/ })
})

t.test('a roster change by a contributor node: refused', async t => {
  await t.rejects(C.core.docs.change(roster, d => setNodeRole(d, C.peerId, 'full', C.admin.userId, at()), { author: C.admin.userId }),
    forbidden(/is not a full node: only full nodes change the roster/))
})

t.test('a revocation cannot be undone (deleting the revoked entry): refused', async t => {
  await t.rejects(F.core.docs.change(roster, d => { delete d.revoked[X.peerId] }, { author: F.admin.userId }),
    forbidden(/a revocation is permanent/))
})

// Claims and signatures: changes from a peer, received by O once it holds everything F holds.

t.test('a local-admin claim naming an id that is not the node\'s own local admin: refused', async t => {
  await sync(F, O)
  const claims = { ...await claimsOf(F, F.admin.userId), u: C.admin.userId }
  const bad = forge({ key: ds, base: await docOf(F, ds), message: claims, signer: F.key, fn: d => patchDataset(d, { name: 'as someone else' }, as(C.admin)) })
  t.match(await refusalOf(O, [item(bad.change)]), { reason: new RegExp(`account ${C.admin.userId} is unknown, disabled or deleted`) })
})

t.test('a change signed by another node\'s key: refused', async t => {
  await sync(F, O)
  await F.core.records.patch(alice, 'dataset', idOf(ds), { description: 'signed by F' })
  const change = (await changesOf(F, ds)).at(-1)
  if (change === undefined) throw new Error('no change')
  const wrong = new ChangeSigner(C.key).sign(change.hash)
  t.match(await refusalOf(O, [{ key: ds, bytes: change.bytes, sigs: packSigs([[change.hash, wrong]]) }]), { reason: new RegExp(`the signature is not node ${F.peerId}'s`) })
})

t.test('a change whose message carries no claims: refused unless the mesh founder attested it', async t => {
  await sync(F, O)
  const bare = forge({ key: ds, base: await docOf(F, ds), message: undefined, signer: C.key, fn: d => patchDataset(d, { name: 'anonymous' }, as(alice)) })
  t.match(await refusalOf(O, [item(bare.change)]), { reason: /does not name its author and origin node, and the mesh founder has not attested it/ })
})
