// Link profiles: a metered peer is never used for background file fetches
// (a pin waits, and says why), a download someone waits for still uses it,
// and clearing `metered` lets the pinned file come. Rate caps are set on
// both sides, so the paced paths carry the traffic (no timing is asserted).
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

async function datasetWithFiles (n: TestNode, files: Array<[string, Uint8Array<ArrayBuffer>]>): Promise<{ id: string, versionId: string }> {
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'files' } })).json()
  const form = new FormData()
  for (const [name, bytes] of files) form.append('file', new Blob([bytes]), name)
  const res = await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: n.admin, body: form })
  if (res.status !== 201) throw new Error(`upload ${res.status}`)
  return { id: ds.id, versionId: ((await res.json()) as { id: string }).id }
}

async function setLink (n: TestNode, peerId: string, payload: unknown): Promise<{ statusCode: number, body: any }> {
  const res = await n.node.api.inject({ method: 'PATCH', url: `/peers/${peerId}`, headers: n.admin, payload: payload as object })
  return { statusCode: res.statusCode, body: res.json() }
}

t.test('a metered peer: pinned files wait for it, a download does not, clearing metered lets them come', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)
  const aId = a.node.peerId

  // Bad input: 400 and nothing changed; an unknown peer: 404.
  for (const payload of [{ maxRate: 5 }, { filesWindow: '25:00-01:00' }, {}, { metered: 'yes' }, { colour: 'red' }]) {
    t.equal((await setLink(b, aId, payload)).statusCode, 400, JSON.stringify(payload))
  }
  t.equal(b.node.book.link(aId), undefined, 'nothing was set by refused requests')
  t.equal((await setLink(b, '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo', { metered: true })).statusCode, 404)

  const set = await setLink(b, aId, { metered: true, maxRate: 1_000_000 })
  t.equal(set.statusCode, 200)
  t.same(set.body.link, { metered: true, maxRate: 1_000_000 })
  // A caps what it sends to B too: blob chunks and sync frames go through its pacer.
  t.equal((await setLink(a, b.node.peerId, { maxRate: 1_000_000 })).statusCode, 200)
  const listed = (await b.node.api.inject({ url: '/peers', headers: b.admin })).json().items
  t.match(listed, [{ peerId: aId, link: { metered: true, maxRate: 1_000_000 } }], 'GET /peers shows the profile')

  const one = randomBytes(200_000)
  const two = randomBytes(300_000)
  const { id, versionId } = await datasetWithFiles(a, [['one.bin', one], ['two.bin', two]])
  await eventually(async () => (await b.node.api.inject({ url: `/datasets/${id}`, headers: b.admin })).statusCode === 200, 15_000, 'metadata on b')
  t.equal((await b.node.api.inject({ method: 'POST', url: '/pins', headers: b.admin, payload: { target: 'dataset', value: id } })).statusCode, 201)

  // The pin's fetches were tried and held back, and say why.
  const wanted = async (): Promise<Array<{ sha256: string, waiting?: string }>> => (await b.node.api.inject({ url: '/transfers', headers: b.admin })).json().wanted
  const heldBack = async (hashes: string[]): Promise<boolean> => {
    const w = await wanted()
    return hashes.every(h => w.some(x => x.sha256 === h && /held back by link profiles: peer \S+ is metered/.test(x.waiting ?? '')))
  }
  await eventually(async () => await heldBack([sha(one), sha(two)]), 15_000, 'both pinned files held back')
  t.notOk(await b.node.blobs.has(sha(one)), 'one.bin not fetched in the background')
  t.notOk(await b.node.blobs.has(sha(two)), 'two.bin not fetched in the background')
  const status = (await b.node.api.inject({ url: '/sync/status', headers: b.admin })).json()
  t.match(status.peers, [{ peerId: aId, link: { metered: true } }], 'status shows the profile')

  // Someone waits for one.bin: the metered peer serves it.
  const res = await fetch(`${b.node.url}/datasets/${id}/versions/${versionId}/files/one.bin`, { headers: b.admin })
  t.equal(res.status, 200)
  t.ok(Buffer.from(await res.arrayBuffer()).equals(one), 'the download is byte-identical')
  t.ok(await heldBack([sha(two)]), 'two.bin still waits: a download is not a licence for the background')
  t.notOk(await b.node.blobs.has(sha(two)))

  // Metered no more: the queue is kicked by the change, and the pin completes.
  t.same((await setLink(b, aId, { metered: false })).body.link, { maxRate: 1_000_000 })
  await eventually(async () => await b.node.blobs.has(sha(two)), 15_000, 'two.bin fetched in the background')
  await eventually(async () => (await wanted()).length === 0, 15_000, 'nothing left waiting')
  t.pass('the pinned file came once the peer was no longer metered')

  const audit = (await b.node.api.inject({ url: '/audit?type=peer.link', headers: b.admin })).json().items
  t.match(audit, [{ type: 'peer.link', peer: aId, details: { link: { maxRate: 1_000_000 } } }, { type: 'peer.link', details: { link: { metered: true } } }], 'audited, newest first')
  t.equal(audit.length, 2, 'refused requests left no entry')
})
