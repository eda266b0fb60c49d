import t from 'tap'
import { createHash } from 'node:crypto'
import { docKey } from '../../src/crdt/keys.ts'
import { appendReportFiles } from '../../src/crdt/records/report.ts'
import type { FileRef } from '../../src/crdt/records/versions.ts'
import type { Refusal, RemoteDoc } from '../../src/crdt/doc-store.ts'
import type { Principal } from '../../src/warehouse/principal.ts'
import { claimsOf, docOf, forge, item, sync, trustNode, type TrustNode } from '../helpers/trust-fixture.ts'

/**
 * The rule for a report's attachments (`POST /reports/{id}/files`): files
 * are appended by the report's owner or an admin, never changed, removed or
 * named twice. Judged the same for a change made here (the store throws
 * FORBIDDEN) and for one a peer sends (a refusal from admitRemote).
 *
 * F founds the mesh; O is a second full node that receives peers' changes.
 * F's admin created the members alice and bob; alice owns a report about
 * her dataset, created with one file (the file of her dataset's version).
 */
const F = await trustNode(t, 'F')
const O = await trustNode(t, 'O')
await F.core.nodes.found('F')
await F.core.nodes.setRole(F.admin, O.peerId, 'full', 'O')

async function member (username: string): Promise<Principal> {
  const view = await F.core.users.create(F.admin, { username, password: 'correct horse battery', role: 'member' })
  return { userId: String(view.id), username, role: 'member' }
}
const alice = await member('alice')
const bob = await member('bob')

function ref (name: string, text = name): FileRef {
  return { name, sha256: createHash('sha256').update(text).digest('hex'), size: Buffer.byteLength(text), mediaType: 'text/plain' }
}
const dsId = String((await F.core.records.create(alice, 'dataset', { name: 'alice data' })).id)
await F.core.records.addVersion(alice, 'dataset', dsId, [ref('data.csv')], 'v1')
const reportId = String((await F.core.records.create(alice, 'report', {
  reportKind: 'bias', title: 'alice report', subject: { kind: 'dataset', id: dsId }, body: {}, files: [ref('data.csv')]
})).id)
const rep = docKey('report', reportId)

const at = (): string => new Date().toISOString()
const as = (p: Principal): { userId: string, at: string } => ({ userId: p.userId, at: at() })
const forbidden = (reason: RegExp): { code: string, message: RegExp } => ({ code: 'FORBIDDEN', message: reason })

async function refusalOf (to: TrustNode, items: RemoteDoc[]): Promise<Refusal | undefined> {
  return (await to.admit(items)).refused[0]
}

/** A change to the report as `who` would make it on F, sent to O without F's own checks. */
async function fromPeer (who: Principal, fn: (doc: any) => void): Promise<RemoteDoc> {
  await sync(F, O)
  return item(forge({ key: rep, base: await docOf(F, rep), message: await claimsOf(F, who.userId), signer: F.key, fn }).change)
}

t.test('the owner appends files: accepted', async t => {
  await t.resolves(F.core.docs.change(rep, d => appendReportFiles(d, [ref('notes.txt')], as(alice)), { author: alice.userId }))
  await t.resolves(F.core.records.attachReportFiles(alice, reportId, [ref('more.txt')]))
})

t.test('an admin appends files: accepted', async t => {
  await t.resolves(F.core.docs.change(rep, d => appendReportFiles(d, [ref('admin.txt')], as(F.admin)), { author: F.admin.userId }))
})

t.test('another member appends a file: refused', async t => {
  await t.rejects(F.core.docs.change(rep, d => appendReportFiles(d, [ref('bob.txt')], as(bob)), { author: bob.userId }),
    forbidden(/only the owner of this report or an admin can change it/))
  await t.rejects(F.core.records.attachReportFiles(bob, reportId, [ref('bob.txt')]), forbidden(/only the owner of this report or an admin/))
})

t.test('an attached file changed: refused', async t => {
  await t.rejects(F.core.docs.change(rep, d => { d.files[0].size = 1 }, { author: alice.userId }),
    forbidden(/a report's files can only be appended to/))
})

t.test('an attached file removed: refused', async t => {
  await t.rejects(F.core.docs.change(rep, d => { d.files.deleteAt(0) }, { author: alice.userId }),
    forbidden(/a report's files can only be appended to/))
})

t.test('a file inserted before the end: refused', async t => {
  await t.rejects(F.core.docs.change(rep, d => { d.files.insertAt(0, { ...ref('first.txt') }) }, { author: alice.userId }),
    forbidden(/a report's files can only be appended to/))
})

t.test('the list replaced: refused', async t => {
  await t.rejects(F.core.docs.change(rep, d => { d.files = [ref('only.txt')] }, { author: alice.userId }),
    forbidden(/a report's files can only be appended to/))
})

t.test('a name the report already has: refused by the rules, and by the API\'s check first', async t => {
  await t.rejects(F.core.docs.change(rep, d => appendReportFiles(d, [ref('notes.txt', 'other bytes')], as(alice)), { author: alice.userId }),
    forbidden(/the report already has a file named "notes.txt"/))
  await t.rejects(F.core.records.attachReportFiles(alice, reportId, [ref('new.txt'), ref('notes.txt', 'other')]),
    { code: 'CONFLICT', message: /already has a file named notes\.txt/ })
  const names = ((await F.core.records.get('report', reportId)).files as FileRef[]).map(f => f.name)
  t.same(names, ['data.csv', 'notes.txt', 'more.txt', 'admin.txt'], 'nothing was appended')
})

// The same rule for changes that arrive from a peer.

t.test('from a peer: the owner\'s append is accepted', async t => {
  const change = await fromPeer(alice, d => appendReportFiles(d, [ref('peer.txt')], as(alice)))
  const result = await O.admit([change])
  t.same(result.refused, [])
  t.same(((await O.core.records.get('report', reportId)).files as FileRef[]).map(f => f.name).at(-1), 'peer.txt')
})

t.test('from a peer: another member\'s append is refused', async t => {
  const change = await fromPeer(bob, d => appendReportFiles(d, [ref('bob.txt')], as(bob)))
  t.match(await refusalOf(O, [change]), { reason: /only the owner of this report or an admin can change it/ })
})

t.test('from a peer: the owner removing an attached file is refused', async t => {
  const change = await fromPeer(alice, d => { d.files.deleteAt(1) })
  t.match(await refusalOf(O, [change]), { reason: /a report's files can only be appended to/ })
})

t.test('from a peer: a repeated name is refused', async t => {
  const change = await fromPeer(alice, d => appendReportFiles(d, [ref('data.csv', 'again')], as(alice)))
  t.match(await refusalOf(O, [change]), { reason: /the report already has a file named "data.csv"/ })
})
