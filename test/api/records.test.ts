import t from 'tap'
import { addMember, startTestNode } from '../helpers/node.ts'

t.test('datasets: create, get, patch, list with filters and paging, delete, restore', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const created = []
  for (let i = 0; i < 5; i++) {
    const res = await api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: `Rain ${i}`, tags: i % 2 === 0 ? ['even'] : ['odd'], metadata: { i } } })
    t.equal(res.statusCode, 201)
    created.push(res.json())
  }
  const first = created[0]
  t.equal(first.name, 'Rain 0')
  t.same(first.tags, ['even'])
  t.same(first.versions, [])

  const patched = await api.inject({ method: 'PATCH', url: `/datasets/${first.id}`, headers: n.admin, payload: { description: 'daily totals', addTags: ['climate'], metadata: { station: 'north', i: null } } })
  t.equal(patched.statusCode, 200)
  t.same(patched.json().tags, ['climate', 'even'])
  t.same(patched.json().metadata, { station: 'north' })

  const even = (await api.inject({ url: '/datasets?tag=even', headers: n.admin })).json()
  t.same(even.items.map((d: any) => d.name), ['Rain 0', 'Rain 2', 'Rain 4'])
  const byText = (await api.inject({ url: '/datasets?q=RAIN%203', headers: n.admin })).json()
  t.same(byText.items.map((d: any) => d.name), ['Rain 3'])

  const page1 = (await api.inject({ url: '/datasets?limit=2', headers: n.admin })).json()
  t.equal(page1.items.length, 2)
  const page2 = (await api.inject({ url: `/datasets?limit=2&cursor=${page1.next}`, headers: n.admin })).json()
  const page3 = (await api.inject({ url: `/datasets?limit=2&cursor=${page2.next}`, headers: n.admin })).json()
  t.same([...page1.items, ...page2.items, ...page3.items].map((d: any) => d.name), ['Rain 0', 'Rain 1', 'Rain 2', 'Rain 3', 'Rain 4'])
  t.equal(page3.next, undefined)

  t.equal((await api.inject({ method: 'DELETE', url: `/datasets/${first.id}`, headers: n.admin })).statusCode, 204)
  const gone = await api.inject({ url: `/datasets/${first.id}`, headers: n.admin })
  t.equal(gone.statusCode, 410)
  t.equal(gone.json().error.code, 'RECORD_DELETED')
  t.equal((await api.inject({ method: 'PATCH', url: `/datasets/${first.id}`, headers: n.admin, payload: { name: 'x' } })).statusCode, 410)
  t.equal((await api.inject({ url: '/datasets', headers: n.admin })).json().items.length, 4, 'deleted records leave lists')
  t.equal((await api.inject({ url: `/datasets/${first.id}?includeDeleted=true`, headers: n.admin })).json().deleted, true)
  const restored = await api.inject({ method: 'POST', url: `/datasets/${first.id}/restore`, headers: n.admin })
  t.equal(restored.statusCode, 200)
  t.equal(restored.json().deleted, false)
})

t.test('roles: members create and edit their own, read everything, manage no users', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const maria = await addMember(n, 'maria')
  const li = await addMember(n, 'li')
  const mine = (await api.inject({ method: 'POST', url: '/datasets', headers: maria.headers, payload: { name: 'maria data' } })).json()
  t.equal(mine.owner, maria.id)
  t.equal((await api.inject({ method: 'PATCH', url: `/datasets/${mine.id}`, headers: maria.headers, payload: { name: 'renamed' } })).statusCode, 200)
  const other = await api.inject({ method: 'PATCH', url: `/datasets/${mine.id}`, headers: li.headers, payload: { name: 'hijack' } })
  t.equal(other.statusCode, 403)
  t.equal((await api.inject({ method: 'DELETE', url: `/datasets/${mine.id}`, headers: li.headers })).statusCode, 403)
  t.equal((await api.inject({ url: `/datasets/${mine.id}`, headers: li.headers })).json().name, 'renamed', 'readable by all, unchanged')
  t.equal((await api.inject({ method: 'PATCH', url: `/datasets/${mine.id}`, headers: maria.headers, payload: { owner: li.id } })).statusCode, 403, 'only admins hand over ownership')
  t.equal((await api.inject({ method: 'PATCH', url: `/datasets/${mine.id}`, headers: n.admin, payload: { name: 'admin edit' } })).statusCode, 200)
  t.equal((await api.inject({ method: 'POST', url: '/users', headers: maria.headers, payload: { username: 'eve', password: 'some password' } })).statusCode, 403)
  t.equal((await api.inject({ method: 'PATCH', url: `/users/${li.id}`, headers: maria.headers, payload: { displayName: 'x' } })).statusCode, 403)
  t.equal((await api.inject({ method: 'PATCH', url: `/users/${maria.id}`, headers: maria.headers, payload: { role: 'admin' } })).statusCode, 403, 'no self-promotion')
  t.equal((await api.inject({ method: 'PATCH', url: `/users/${maria.id}`, headers: maria.headers, payload: { displayName: 'Maria R.' } })).statusCode, 200)
})

t.test('models and reports', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const model = (await api.inject({ method: 'POST', url: '/models', headers: n.admin, payload: { name: 'yield-net', framework: 'pytorch', metrics: { auc: 0.91 } } })).json()
  t.equal(model.framework, 'pytorch')
  const entry = await api.inject({ method: 'POST', url: `/models/${model.id}/training`, headers: n.admin, payload: { note: 'epoch 10', metrics: { loss: 0.2 }, params: { lr: 0.001 } } })
  t.equal(entry.statusCode, 201)
  const withHistory = (await api.inject({ url: `/models/${model.id}`, headers: n.admin })).json()
  t.equal(withHistory.training.length, 1)
  t.same(withHistory.training[0].metrics, { loss: 0.2 })
  const patched = (await api.inject({ method: 'PATCH', url: `/models/${model.id}`, headers: n.admin, payload: { metrics: { auc: null, f1: 0.8 } } })).json()
  t.same(patched.metrics, { f1: 0.8 })

  const report = await api.inject({ method: 'POST', url: '/reports', headers: n.admin, payload: { reportKind: 'bias', title: 'Bias audit', subject: { kind: 'model', id: model.id }, body: { score: 0.1 } } })
  t.equal(report.statusCode, 201)
  t.same(report.json().subject, { kind: 'model', id: model.id })
  const orphan = await api.inject({ method: 'POST', url: '/reports', headers: n.admin, payload: { reportKind: 'xai', title: 'x', subject: { kind: 'dataset', id: model.id }, body: {} } })
  t.equal(orphan.statusCode, 400, 'subject must exist')
  const badKind = await api.inject({ method: 'POST', url: '/reports', headers: n.admin, payload: { reportKind: 'vibes', title: 'x', subject: { kind: 'model', id: model.id }, body: {} } })
  t.equal(badKind.statusCode, 400)
})
