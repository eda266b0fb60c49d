// List endpoints say how many records match the query on all pages
// together (issue 10, "Rough edges"), and `dw dataset ls --limit` shows
// "N of TOTAL".
import t from 'tap'
import { addMember, startTestNode } from '../helpers/node.ts'
import { dw, dwJson } from '../cli/helpers.ts'

t.test('GET /datasets, /models, /reports, /users return items and total', async t => {
  const n = await startTestNode(t)
  const api = n.node.api
  const get = async (url: string): Promise<any> => {
    const res = await api.inject({ url, headers: n.admin })
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    ids.push((await api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: `Rain ${i}`, tags: i % 2 === 0 ? ['even'] : ['odd'] } })).json().id)
  }

  const page1 = await get('/datasets?limit=2')
  t.match(page1, { total: 5 }, 'the first page counts every match')
  t.equal(page1.items.length, 2)
  const page2 = await get(`/datasets?limit=2&cursor=${page1.next}`)
  t.match(page2, { total: 5 }, 'so does a later page')
  const page3 = await get(`/datasets?limit=2&cursor=${page2.next}`)
  t.match(page3, { total: 5 })
  t.equal(page3.next, undefined, 'paging unchanged: no next after the last page')
  t.same([...page1.items, ...page2.items, ...page3.items].map((d: any) => d.name), ['Rain 0', 'Rain 1', 'Rain 2', 'Rain 3', 'Rain 4'])
  t.equal((await get('/datasets?limit=5')).next, undefined, 'an exactly full page has no next')

  t.match(await get('/datasets?tag=even&limit=1'), { total: 3, items: [{ name: 'Rain 0' }] }, 'total follows the filters')
  t.match(await get('/datasets?q=rain%204'), { total: 1 })
  t.equal((await api.inject({ method: 'DELETE', url: `/datasets/${ids[0] as string}`, headers: n.admin })).statusCode, 204)
  t.match(await get('/datasets'), { total: 4 }, 'deleted records are not counted')
  t.match(await get('/datasets?includeDeleted=true'), { total: 5 })

  const model = (await api.inject({ method: 'POST', url: '/models', headers: n.admin, payload: { name: 'yield-net' } })).json()
  t.match(await get('/models'), { total: 1, items: [{ id: model.id }] })
  await api.inject({ method: 'POST', url: '/reports', headers: n.admin, payload: { reportKind: 'bias', title: 'Bias audit', subject: { kind: 'model', id: model.id }, body: {} } })
  t.match(await get('/reports?limit=1'), { total: 1 })

  await addMember(n, 'ana')
  const users = await get('/users')
  t.equal(users.total, users.items.length)
  t.equal(users.total, 2, 'admin and ana')

  const json = await dwJson(['dataset', 'ls', '--limit', '2', '--data', n.dataDir])
  t.equal(json.length, 2, '--limit caps the list')
  const table = await dw(['dataset', 'ls', '--limit', '2', '--data', n.dataDir])
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /\n2 of 4 datasets \(--limit\)\n$/, 'N of TOTAL when the list is cut')
  const all = await dw(['dataset', 'ls', '--data', n.dataDir])
  t.notMatch(all.stdout, / of \d+ datasets/, 'no footer when everything is shown')
  t.equal((await dw(['dataset', 'ls', '--limit', '0', '--data', n.dataDir])).code, 1)
})
