// A write's answer is the record as that write left it. A delete or an edit
// landing right after it, before the answer was read, turned a committed
// PATCH into an error ("deleted") or into another write's state: the
// partition simulation (seed 25) saw a PATCH answered 410 although it was
// stored, so its client took it for refused.
import t from 'tap'
import type { DocChangeEvent } from '../../src/crdt/doc-store.ts'
import { trustNode } from '../helpers/trust-fixture.ts'

/** Runs `next` from inside the first local change `write` commits: it queues behind that change, ahead of anything the write does after. */
async function withNext<T> (F: Awaited<ReturnType<typeof trustNode>>, write: () => Promise<T>, next: (key: string) => Promise<unknown>): Promise<T> {
  let started: Promise<unknown> | undefined
  const onChange = (e: DocChangeEvent): void => { if (started === undefined && e.origin === 'local') started = next(e.key) }
  F.core.docs.on('change', onChange)
  try {
    return await write()
  } finally {
    F.core.docs.off('change', onChange)
    await started
  }
}

t.test('a PATCH with a delete landing right after it answers with the patched record', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const id = String((await F.core.records.create(F.admin, 'dataset', { name: 'survey' })).id)
  const answer = await withNext(F,
    async () => await F.core.records.patch(F.admin, 'dataset', id, { name: 'survey, checked' }),
    async () => { await F.core.records.remove(F.admin, 'dataset', id) })
  t.equal(answer.name, 'survey, checked')
  t.not(answer.deleted, true, 'the answer is the state the PATCH made')
  const now = await F.core.records.get('dataset', id, { includeDeleted: true })
  t.equal(now.deleted, true, 'the delete landed after it')
  t.equal(now.name, 'survey, checked', 'and the PATCH is stored')
})

t.test('a PATCH with another edit landing right after it answers with its own change, not the other', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const id = String((await F.core.records.create(F.admin, 'dataset', { name: 'survey' })).id)
  const answer = await withNext(F,
    async () => await F.core.records.patch(F.admin, 'dataset', id, { name: 'first' }),
    async () => await F.core.records.patch(F.admin, 'dataset', id, { name: 'second' }))
  t.equal(answer.name, 'first')
  t.equal((await F.core.records.get('dataset', id)).name, 'second')
})

t.test('a create and a restore with a delete landing right after answer with what they made', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const id = String((await F.core.records.create(F.admin, 'dataset', { name: 'survey' })).id)
  await F.core.records.remove(F.admin, 'dataset', id)
  const restored = await withNext(F,
    async () => await F.core.records.restore(F.admin, 'dataset', id),
    async () => { await F.core.records.remove(F.admin, 'dataset', id) })
  t.not(restored.deleted, true, 'the restore answers with the record restored')
  t.equal((await F.core.records.get('dataset', id, { includeDeleted: true })).deleted, true)

  let createdId: string | undefined
  const created = await withNext(F,
    async () => await F.core.records.create(F.admin, 'model', { name: 'classifier' }),
    async (key) => {
      createdId = key.slice('model/'.length)
      await F.core.records.remove(F.admin, 'model', createdId)
    })
  t.equal(created.id, createdId)
  t.not(created.deleted, true, 'the create answers with the record it made')
})

t.test('an account change with a delete landing right after answers with the account as it changed it', async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const alice = await F.core.users.create(F.admin, { username: 'alice', password: 'correct horse battery', role: 'member' })
  const answer = await withNext(F,
    async () => await F.core.users.update(F.admin, String(alice.id), { displayName: 'Alice A.' }),
    async () => { await F.core.users.remove(F.admin, String(alice.id)) })
  t.equal(answer.displayName, 'Alice A.')
  t.not(answer.deleted, true, 'the answer is the state the change made')
  t.equal((await F.core.users.get(String(alice.id))).deleted, true, 'the delete landed after it')
})
