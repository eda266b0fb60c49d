// Files live on more than one site: copy targets, replicated holdings,
// background copying, and a site that loses its disk losing no file.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { addMember, startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { nodeDocKey } from '../../src/trust/roster.ts'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
/** Short intervals, no free-disk reserve (a test machine's disk may be small), the default 10-minute grace. */
const FAST = { scanMs: 200, publishMs: 100, reserveBytes: 0, reservePercent: 0 }

async function upload (n: TestNode, files: Array<[string, Uint8Array<ArrayBuffer>]>, tags: string[] = []): Promise<{ id: string, versionId: string }> {
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'survey', tags } })).json()
  const form = new FormData()
  for (const [name, bytes] of files) form.append('file', new Blob([bytes]), name)
  const res = await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: n.admin, body: form })
  if (res.status !== 201) throw new Error(`upload ${res.status}`)
  return { id: ds.id, versionId: ((await res.json()) as { id: string }).id }
}

async function availability (n: TestNode, id: string): Promise<any[]> {
  const res = await n.node.api.inject({ url: `/datasets/${id}/availability`, headers: n.admin })
  return res.json().items[0]?.files ?? []
}

/** What a node's own document says it holds. */
async function holdingsOf (n: TestNode): Promise<Record<string, number>> {
  return await n.node.docs.read(nodeDocKey(n.node.peerId), d => ({ ...(d?.holdings ?? {}) }))
}

t.test('three sites, target 2: 20 files uploaded on one site reach a second; that site loses its disk; every file downloads from the others', async t => {
  const a = await startTestNode(t, { files: FAST })
  const [b, c] = await Promise.all([startTestNode(t, { files: FAST }), startTestNode(t, { files: FAST })])
  await link(a, b)
  await link(a, c)
  await link(b, c)
  // The mesh-wide target, set on one site, replicates through the roster.
  const set = await a.node.api.inject({ method: 'PUT', url: '/mesh/copies', headers: a.admin, payload: { copies: 2 } })
  t.equal(set.statusCode, 200)
  await eventually(async () => (await c.node.api.inject({ url: '/mesh/copies', headers: c.admin })).json().copies === 2, 15_000, 'the target on c')

  const files = Array.from({ length: 20 }, (_, i) => [`f${i}.bin`, randomBytes(512 + i)] as [string, Uint8Array<ArrayBuffer>])
  const { id, versionId } = await upload(a, files)
  await eventually(async () => {
    const listed = await availability(a, id)
    return listed.length === 20 && listed.every(f => f.target === 2 && f.copies >= 2)
  }, 60_000, 'every file with 2 copies, as availability on a says')
  // Only the site the ranking chose fetched each file: exactly two copies, not three.
  for (const [, bytes] of files) {
    const where = await Promise.all([a, b, c].map(async n => await n.node.blobs.has(sha(bytes))))
    t.equal(where.filter(Boolean).length, 2, 'two sites hold the file')
  }
  // The replicated holdings say the same on every site.
  await eventually(async () => {
    const published = await Promise.all([b, c].map(holdingsOf))
    return files.every(([, bytes]) => published.filter(h => h[sha(bytes)] !== undefined).length === 1)
  }, 15_000, 'b and c publish what they fetched')
  const shown = await availability(c, id)
  t.ok(shown.every(f => f.holders.some((h: any) => h.peerId === a.node.peerId)), 'availability names the uploading site among the holders')

  // Garbage collection on every site: a live file is never collected.
  for (const n of [a, b, c]) {
    const gc = (await n.node.api.inject({ method: 'POST', url: '/blobs/gc', headers: n.admin, payload: {} })).json()
    t.equal(gc.removed.length, 0, 'gc removes no live file')
  }

  // Site a loses its disk.
  await a.node.stop()
  await rm(a.dataDir, { recursive: true, force: true })
  for (const n of [b, c]) {
    for (const [name, bytes] of files) {
      const res = await fetch(`${n.node.url}/datasets/${id}/versions/${versionId}/files/${name}`, { headers: n.admin })
      const body = Buffer.from(await res.arrayBuffer())
      if (res.status !== 200 || !body.equals(bytes)) t.fail(`${name} from ${n === b ? 'b' : 'c'}: ${res.status}`)
    }
  }
  t.pass('every file downloads byte-identical from the remaining sites')
})

t.test('copy targets: admins only, 1 to 10, bad input changes nothing; per tag and per record, the highest wins', async t => {
  const n = await startTestNode(t)
  const member = await addMember(n, 'mo')
  const put = async (headers: { authorization: string }, payload: unknown): Promise<number> =>
    (await n.node.api.inject({ method: 'PUT', url: '/mesh/copies', headers, payload: payload as object })).statusCode
  const settings = async (): Promise<any> => (await n.node.api.inject({ url: '/mesh/copies', headers: n.admin })).json()
  t.same(await settings(), { copies: null, copiesByTag: {}, defaultCopies: 2 }, 'nothing set: the default 2 applies')
  t.equal(await put(member.headers, { copies: 3 }), 403, 'a member may not set the mesh target')
  for (const bad of [0, 11, 'two', 2.5]) t.equal(await put(n.admin, { copies: bad }), 400, `${JSON.stringify(bad)} is refused`)
  t.equal(await put(n.admin, { copies: 3, tag: '' }), 400, 'an empty tag is refused')
  t.same(await settings(), { copies: null, copiesByTag: {}, defaultCopies: 2 }, 'and nothing changed')
  t.equal(await put(n.admin, { copies: 3, tag: 'raw' }), 200)
  t.same(await settings(), { copies: null, copiesByTag: { raw: 3 }, defaultCopies: 2 })

  const bytes = randomBytes(100)
  const { id } = await upload(n, [['one.bin', bytes]], ['raw'])
  const patch = async (payload: unknown): Promise<number> =>
    (await n.node.api.inject({ method: 'PATCH', url: `/datasets/${id}`, headers: n.admin, payload: payload as object })).statusCode
  for (const bad of [0, 11, 'two']) t.equal(await patch({ copies: bad }), 400, `a record target of ${JSON.stringify(bad)} is refused`)
  t.equal((await n.node.api.inject({ url: `/datasets/${id}`, headers: n.admin })).json().copies, undefined, 'the record is unchanged')
  t.equal((await availability(n, id))[0].target, 3, 'the tag\'s target')
  t.equal(await patch({ copies: 5 }), 200)
  t.equal((await availability(n, id))[0].target, 5, 'the record\'s own, higher target')
  t.equal(await patch({ copies: null }), 200)
  t.equal((await availability(n, id))[0].target, 3, 'cleared: the tag\'s again')
  const mine = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: member.headers, payload: { name: 'mine' } })).json()
  t.equal((await n.node.api.inject({ method: 'PATCH', url: `/datasets/${mine.id as string}`, headers: member.headers, payload: { copies: 4 } })).statusCode, 200, 'a record\'s owner sets its target')
})

t.test('a file below its target is never collected; gc updates the holdings', async t => {
  const n = await startTestNode(t, { files: FAST })
  const live = randomBytes(300)
  const doomed = randomBytes(301)
  await upload(n, [['live.bin', live]])
  const gone = await upload(n, [['doomed.bin', doomed]])
  await eventually(async () => { const h = await holdingsOf(n); return h[sha(live)] === 300 && h[sha(doomed)] === 301 }, 15_000, 'both published')
  const [file] = await availability(n, (await n.node.records.list('dataset', { limit: 10 })).items[0]?.id as string)
  t.ok(file.copies < file.target, 'one copy of a target of 2: below target')
  t.equal((await n.node.api.inject({ method: 'DELETE', url: `/datasets/${gone.id}`, headers: n.admin })).statusCode, 204)
  const gc = (await n.node.api.inject({ method: 'POST', url: '/blobs/gc', headers: n.admin, payload: {} })).json()
  t.same(gc.removed.map((b: any) => b.sha256), [sha(doomed)], 'only the deleted record\'s file is collected')
  t.equal(await n.node.blobs.has(sha(live)), true, 'the file below its target stays')
  await eventually(async () => { const h = await holdingsOf(n); return h[sha(doomed)] === undefined && h[sha(live)] === 300 }, 15_000, 'the holdings drop the collected file')
  const status = (await n.node.api.inject({ url: '/sync/status', headers: n.admin })).json()
  await eventually(async () => (await n.node.api.inject({ url: '/sync/status', headers: n.admin })).json().copies.belowTarget === 1, 15_000, 'status counts the file below target')
  t.ok(status.copies !== undefined)
})
