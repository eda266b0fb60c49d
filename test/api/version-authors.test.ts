// Each version's author (and each training run's `by`) is named beside its
// id in record responses, as owner, createdBy and updatedBy are.
import t from 'tap'
import { addMember, startTestNode } from '../helpers/node.ts'

async function addVersion (url: string, auth: { authorization: string }, name: string): Promise<{ id: string, author: string, createdAt: string }> {
  const form = new FormData()
  form.append('file', new Blob([name]), name)
  const res = await fetch(url, { method: 'POST', headers: auth, body: form })
  if (res.status !== 201) throw new Error(`upload ${res.status}: ${await res.text()}`)
  return await res.json() as { id: string, author: string, createdAt: string }
}

t.test('versions and training runs carry their author\'s name', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const alice = await addMember(n, 'alice')
  const model = (await api.inject({ method: 'POST', url: '/models', headers: alice.headers, payload: { name: 'classifier' } })).json()
  const mine = await addVersion(`${n.node.url}/models/${model.id as string}/versions`, alice.headers, 'weights.onnx')
  const afterMine = (await api.inject({ url: `/models/${model.id as string}`, headers: alice.headers })).json()
  t.equal(afterMine.updatedBy, alice.id, 'adding a version stamps who last changed the record')
  t.equal(afterMine.updatedAt, mine.createdAt)
  const admins = await addVersion(`${n.node.url}/models/${model.id as string}/versions`, n.admin, 'weights-fixed.onnx')
  const run = await api.inject({ method: 'POST', url: `/models/${model.id as string}/training`, headers: n.admin, payload: { note: 'rerun', versionId: admins.id, metrics: { f1: 0.8 } } })
  t.equal(run.statusCode, 201)
  const afterRun = (await api.inject({ url: `/models/${model.id as string}`, headers: alice.headers })).json()
  t.equal(afterRun.updatedBy, admins.author, 'so does a training run')
  t.equal(afterRun.updatedAt, run.json().at)

  const view = (await api.inject({ url: `/models/${model.id as string}`, headers: alice.headers })).json()
  const adminName = view.versions[1]?.authorName as string
  t.match(adminName, /^admin@/, 'the node\'s bootstrap admin as admin@<site>')
  t.same(view.versions.map((v: any) => [v.id, v.author, v.authorName]), [[mine.id, alice.id, 'alice'], [admins.id, admins.author, adminName]])
  t.same(view.training.map((e: any) => e.byName), [adminName])
  t.equal(view.ownerName, 'alice')

  const patched = (await api.inject({ method: 'PATCH', url: `/models/${model.id as string}`, headers: alice.headers, payload: { framework: 'onnx' } })).json()
  t.same(patched.versions.map((v: any) => v.authorName), ['alice', adminName], 'a patch answers with names too')
})
