import t from 'tap'
import { localAdminIdOf, nodeDocIdOf, nodeDocKey, rosterKey } from '../../src/trust/roster.ts'
import { claimsOf, docOf, forge, item, sync, trustNode } from '../helpers/trust-fixture.ts'

/**
 * The rule for node documents (`node/<id>`: the files a node holds),
 * through real stores: only the node the document names writes it, as its
 * own bootstrap admin, while it is a non-revoked member of the roster.
 *
 * F founds the mesh (full); C is a contributor, O read-only, X was
 * enrolled then revoked.
 */
const F = await trustNode(t, 'F')
const C = await trustNode(t, 'C')
const O = await trustNode(t, 'O')
const X = await trustNode(t, 'X')
const meshId = (await F.core.nodes.found('F')).meshId
await F.core.nodes.setRole(F.admin, C.peerId, 'contributor', 'C')
await F.core.nodes.setRole(F.admin, O.peerId, 'read-only', 'O')
await F.core.nodes.setRole(F.admin, X.peerId, 'contributor', 'X')
await F.core.nodes.revoke(F.admin, X.peerId)
for (const n of [C, O, X]) await sync(F, n, [rosterKey(meshId)])

const SHA = 'a'.repeat(64)
const forbidden = (reason: RegExp): { code: string, message: RegExp } => ({ code: 'FORBIDDEN', message: reason })

function init (peerId: string, holdings: Record<string, unknown> = { [SHA]: 10 }): (doc: any) => void {
  return doc => {
    doc.kind = 'node'
    doc.id = nodeDocIdOf(peerId)
    doc.peerId = peerId
    doc.holdings = holdings
  }
}

t.test('a node document names its own peer id: refused otherwise', async t => {
  await t.rejects(C.core.docs.create(nodeDocKey(C.peerId), init(F.peerId), { author: localAdminIdOf(C.peerId) }),
    forbidden(/own kind, id and peer id/))
})

t.test('a node publishes its own document, and its peers accept it', async t => {
  await t.resolves(C.core.docs.create(nodeDocKey(C.peerId), init(C.peerId), { author: localAdminIdOf(C.peerId) }))
  const result = await sync(C, F, [nodeDocKey(C.peerId)])
  t.same(result.refused, [])
  t.same(await F.core.docs.read(nodeDocKey(C.peerId), d => d?.holdings), { [SHA]: 10 })
})

t.test('a read-only node publishes its own document too', async t => {
  await t.resolves(O.core.docs.create(nodeDocKey(O.peerId), init(O.peerId), { author: localAdminIdOf(O.peerId) }))
  t.same((await sync(O, F, [nodeDocKey(O.peerId)])).refused, [])
})

t.test('a node writing another node\'s document: refused', async t => {
  await t.rejects(C.core.docs.create(nodeDocKey(F.peerId), init(F.peerId), { author: localAdminIdOf(C.peerId) }),
    forbidden(/a node writes only its own node document/))
  // The same from a peer: C signs a change to F's document.
  const rival = forge({ key: nodeDocKey(F.peerId), message: await claimsOf(C, localAdminIdOf(C.peerId)), signer: C.key, fn: init(F.peerId) })
  const refused = (await O.admit([item(rival.change)])).refused
  t.match(refused[0], { reason: /a node writes only its own node document/ })
})

t.test('an account other than the node\'s own bootstrap admin: refused, even a full node\'s admin', async t => {
  const alice = await F.core.users.create(F.admin, { username: 'alice-admin', password: 'correct horse battery', role: 'admin' })
  await t.rejects(F.core.docs.create(nodeDocKey(F.peerId), init(F.peerId), { author: String(alice.id) }),
    forbidden(/written only by its own node/))
})

t.test('a revoked node: refused', async t => {
  await t.rejects(X.core.docs.create(nodeDocKey(X.peerId), init(X.peerId), { author: localAdminIdOf(X.peerId) }),
    forbidden(/was revoked/))
})

t.test('kind, id and peer id never change; holdings are sizes keyed by sha256', async t => {
  const key = nodeDocKey(C.peerId)
  const author = { author: localAdminIdOf(C.peerId) }
  await t.rejects(C.core.docs.change(key, d => { d.kind = 'dataset' }, author), forbidden(/kind cannot change/))
  await t.rejects(C.core.docs.change(key, d => { d.id = nodeDocIdOf(F.peerId) }, author), forbidden(/id cannot change/))
  await t.rejects(C.core.docs.change(key, d => { d.peerId = F.peerId }, author), forbidden(/peerId cannot change/))
  await t.rejects(C.core.docs.change(key, d => { d.holdings['not a hash'] = 1 }, author), forbidden(/keyed by sha256/))
  await t.rejects(C.core.docs.change(key, d => { d.holdings['b'.repeat(64)] = -1 }, author), forbidden(/a size in bytes/))
  await t.rejects(C.core.docs.change(key, d => { d.holdings = {} }, author), forbidden(/holdings cannot be replaced/))
  await t.resolves(C.core.docs.change(key, d => { delete d.holdings[SHA]; d.holdings['b'.repeat(64)] = 5 }, author))
  // The same immutability from a peer: C's signed change renaming its document's peer id.
  await sync(C, F, [key])
  const renamed = forge({ key, base: await docOf(C, key), message: await claimsOf(C, localAdminIdOf(C.peerId)), signer: C.key, fn: d => { d.peerId = O.peerId } })
  t.match((await F.admit([item(renamed.change)])).refused[0], { reason: /peerId cannot change/ })
})

t.test('node documents reference no blob and are no records', async t => {
  t.equal(await F.core.refs.isReferenced(SHA), false, 'a holding does not keep a blob alive or make it servable')
  t.same((await F.core.records.list('dataset', { limit: 100 })).items, [])
})
