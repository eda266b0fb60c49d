// SIGKILL at a seeded point during a sync: the restarted node opens, resumes
// and converges.
import t from 'tap'
import { dw, dwJson, initialised, rosterReached, started } from '../cli/helpers.ts'
import { eventually } from '../helpers/mesh.ts'
import { type Api, kill, seededRandom, signIn } from '../helpers/crash.ts'

const random = seededRandom(t)

t.test('kill -9 during a sync: the restarted node opens, resumes and converges', async t => {
  const dataA = await initialised(t, 'source')
  const dataB = await initialised(t, 'sink', { join: true })
  const a = await started(t, dataA)
  // B joins A's mesh first (A, a full node, adds it to the roster) and stops:
  // the records written next reach it in one catch-up, killed midway.
  let b = await started(t, dataB)
  const statusA = await dwJson(['status', '--data', dataA])
  const added = await dw(['peer', 'add', statusA.sync.addresses[0], '--data', dataB])
  t.equal(added.code, 0, added.stderr)
  const statusB = await dwJson(['status', '--data', dataB])
  const enrolled = await dw(['peer', 'add', '--role', 'full', statusB.sync.addresses[0], '--data', dataA])
  t.equal(enrolled.code, 0, enrolled.stderr)
  t.equal(await rosterReached(dataB), 'full', 'B holds the roster naming it')
  b.child.kill('SIGTERM')
  await b.exited
  const apiA = await signIn(a.url)
  // 2,000 records: a catch-up of eight offers, long enough to be killed midway.
  for (let i = 0; i < 20; i++) {
    await Promise.all(Array.from({ length: 100 }, async (_, j) => await apiA('POST', '/datasets', { name: `s${i}-${j}`, description: 'x'.repeat(200) })))
  }
  b = await started(t, dataB)
  let apiB = await signIn(b.url)
  await eventually(async () => ((await apiB('GET', '/datasets?limit=1')).json.items.length ?? 0) > 0, 20_000, 'sync started')
  await new Promise(resolve => setTimeout(resolve, random() * 400))
  await kill(b)
  b = await started(t, dataB)
  apiB = await signIn(b.url)
  const count = async (api: Api): Promise<number> => {
    let n = 0
    let cursor: string | undefined
    for (let page = 0; page < 100; page++) {
      const list = await api('GET', `/datasets?limit=1000${cursor !== undefined ? `&cursor=${cursor}` : ''}`)
      n += list.json.items.length
      cursor = list.json.next
      if (cursor === undefined) break
    }
    return n
  }
  const partial = await count(apiB)
  t.comment(`killed with ${partial} of 2000 records`)
  // B's old address in A's book is stale after a restart on a new port; B dials A.
  await eventually(async () => await count(apiB) === 2000, 60_000, 'convergence after the crash')
  t.pass('converged')
})
