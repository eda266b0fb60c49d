// Which references to a blob count: a new record naming the bytes of deleted
// records does not make them servable again; a restore, an upload and a
// reference made while the blob was readable do.
import t from 'tap'
import { BlobRefs, type ReferencingSummary } from '../../src/crdt/blob-refs.ts'
import type { DocMeta } from '../../src/crdt/doc-store.ts'
import { openDb, jsonSublevel } from '../../src/db.ts'
import { tempDir } from '../helpers/tmp.ts'

const X = 'a'.repeat(64)

/** A BlobRefs over a real LevelDB, and a way to record a document's new state as the document store would. */
async function setup (t: Parameters<typeof tempDir>[0]): Promise<{ refs: BlobRefs, state: (key: string, blobs: string[], deleted?: boolean) => Promise<void>, write: (ops: unknown[]) => Promise<void> }> {
  const db = await openDb(await tempDir(t, 'dw-refs-'))
  t.teardown(async () => { await db.close() })
  const refs = new BlobRefs(jsonSublevel<string>(db, 'blobrefs'))
  const metas = new Map<string, DocMeta<ReferencingSummary>>()
  let seq = 0
  const write = async (ops: unknown[]): Promise<void> => { await db.batch(ops as any) }
  const state = async (key: string, blobs: string[], deleted = false): Promise<void> => {
    const meta: DocMeta<ReferencingSummary> = { heads: [], seq: ++seq, chunks: 0, summary: { deleted, blobs } }
    await write(refs.index(key, metas.get(key), meta))
    metas.set(key, meta)
  }
  return { refs, state, write }
}

t.test('a reference made while the blob is readable counts, and outlives the one it came through', async t => {
  const { refs, state } = await setup(t)
  t.equal(await refs.isReferenced(X), false, 'nothing references it yet')
  await state('dataset/d', [X])
  t.equal(await refs.isReferenced(X), true, 'the first reference counts')
  await state('report/r', [X])
  await state('dataset/d', [X], true)
  t.same(await refs.accepted(X), ['report/r'], 'made while d was live, the report keeps the blob servable')
})

t.test('bytes left to deleted records are not brought back by a new reference; a restore or an upload does', async t => {
  const { refs, state } = await setup(t)
  await state('dataset/d', [X])
  await state('dataset/d', [X], true)
  t.equal(await refs.isReferenced(X), false, 'a deleted record references nothing')
  await state('dataset/evil', [X])
  t.same(await refs.referrers(X), ['dataset/evil'], 'the new reference is indexed')
  t.equal(await refs.isReferenced(X), false, 'but does not count: the blob was left to deleted records only')
  await state('report/second', [X])
  t.equal(await refs.isReferenced(X), false, 'nor does a reference made through the suspect one')

  await state('dataset/d', [X])
  t.same(await refs.accepted(X), ['dataset/d'], 'a restore brings the blob back, through the restored record only')
  await state('dataset/d', [X], true)
  t.equal(await refs.isReferenced(X), false)

  await refs.vouch(X, ['dataset/evil'])
  t.same(await refs.accepted(X), ['dataset/evil', 'report/second'], 'vouched for (uploaded here, or served by a peer), the reference counts from when it was made, and so do those made beside it')
})

t.test('references older than the log count, and keep the ones made beside them', async t => {
  const { refs, state, write } = await setup(t)
  // As a node upgraded from a version without the log holds them: the reference key only.
  await write([{ type: 'put', sublevel: (await legacySublevel(refs)), key: `${X}\x00dataset/old`, value: '' }])
  t.equal(await refs.isReferenced(X), true, 'a reference without events counts')
  await state('report/new', [X])
  await state('dataset/other', [X])
  t.same((await refs.accepted(X)).sort(), ['dataset/old', 'dataset/other', 'report/new'])
})

/** The sublevel a BlobRefs writes to, taken from an index operation it produces. */
async function legacySublevel (refs: BlobRefs): Promise<unknown> {
  const ops = refs.index('probe/x', undefined, { heads: [], seq: 0, chunks: 0, summary: { deleted: false, blobs: ['b'.repeat(64)] } })
  return (ops[0] as { sublevel: unknown }).sublevel
}

t.test('all() lists referenced hashes only', async t => {
  const { refs, state } = await setup(t)
  const Y = 'b'.repeat(64)
  await state('dataset/d', [X, Y])
  await refs.vouch(X, ['dataset/d'])
  const all: string[] = []
  for await (const sha of refs.all()) all.push(sha)
  t.same(all, [X, Y])
})
