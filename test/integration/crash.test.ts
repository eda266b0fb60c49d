// SIGKILL at random (seeded) points during bulk writes, during a sync and
// during blob writes: after a restart the store opens without repair, no
// acknowledged write is lost, and no partial record or blob is visible.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ADMIN_PASSWORD, dw, dwJson, initialised, rosterReached, started, type Started } from '../cli/helpers.ts'
import { eventually } from '../helpers/mesh.ts'

const SEED = Number(process.env.CRASH_SEED ?? 20261126)
let state = SEED
/** A small seeded PRNG (mulberry32) so a failing kill point reproduces. */
function random (): number {
  state = (state + 0x6d2b79f5) | 0
  let x = Math.imul(state ^ (state >>> 15), 1 | state)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
t.comment(`CRASH_SEED=${SEED}`)

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number, json: any }>

async function signIn (url: string): Promise<Api> {
  const res = await fetch(`${url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) })
  const { token } = await res.json() as { token: string }
  return async (method, path, body) => {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) }
    if (body instanceof FormData) init.body = body
    else if (body !== undefined) {
      init.body = JSON.stringify(body)
      init.headers = { ...init.headers, 'content-type': 'application/json' }
    }
    const r = await fetch(url + path, init)
    const text = await r.text()
    return { status: r.status, json: text === '' ? undefined : JSON.parse(text) }
  }
}

async function kill (node: Started): Promise<void> {
  node.child.kill('SIGKILL')
  await node.exited
}

/** Every blob file in the store must hash to its name; nothing half-written is visible. */
async function blobsAreWhole (t: any, data: string): Promise<void> {
  const dir = join(data, 'blobs')
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  let checked = 0
  for (const e of entries) {
    if (!e.isFile() || !/^[0-9a-f]{64}$/.test(e.name) || e.parentPath.includes(`${'/'}tmp`)) continue
    const hash = createHash('sha256')
    for await (const chunk of createReadStream(join(e.parentPath, e.name))) hash.update(chunk as Buffer)
    t.equal(hash.digest('hex'), e.name, `blob ${e.name.slice(0, 12)} is whole`)
    checked += 1
  }
  t.comment(`${checked} blobs verified`)
}

t.test('kill -9 during bulk writes loses no acknowledged write', async t => {
  const data = await initialised(t, 'bulk')
  for (let round = 0; round < 3; round++) {
    const node = await started(t, data)
    const api = await signIn(node.url)
    const acked: string[] = []
    let stop = false
    const writers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; !stop && i < 10_000; i++) {
        const res = await api('POST', '/datasets', { name: `r${round}-w${w}-${i}`, tags: ['crash'], metadata: { round, w, i } }).catch(() => undefined)
        if (res?.status === 201) acked.push(res.json.id)
      }
    })
    await new Promise(resolve => setTimeout(resolve, 300 + random() * 1200))
    await kill(node)
    stop = true
    await Promise.all(writers)
    const again = await started(t, data)
    const api2 = await signIn(again.url)
    const seen = new Set<string>()
    let cursor: string | undefined
    for (let page = 0; page < 1000; page++) {
      const list = await api2('GET', `/datasets?tag=crash&limit=1000${cursor !== undefined ? `&cursor=${cursor}` : ''}`)
      for (const d of list.json.items) seen.add(d.id)
      cursor = list.json.next
      if (cursor === undefined) break
    }
    const missing = acked.filter(id => !seen.has(id))
    t.same(missing, [], `round ${round}: all ${acked.length} acknowledged creates survived`)
    // No partial record: a sample of records read back whole.
    for (const id of [...seen].slice(-20)) {
      const got = await api2('GET', `/datasets/${id}`)
      t.ok(got.status === 200 && typeof got.json.name === 'string' && got.json.tags.includes('crash'))
    }
    await kill(again)
  }
})

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

t.test('kill -9 during blob writes leaves no partial blob visible', async t => {
  const data = await initialised(t, 'blobs')
  let node = await started(t, data)
  let api = await signIn(node.url)
  const ds = (await api('POST', '/datasets', { name: 'uploads' })).json
  const big = randomBytes(48 * 1024 * 1024)
  const form = new FormData()
  form.append('file', new Blob([big]), 'big.bin')
  const upload = api('POST', `/datasets/${ds.id as string}/versions`, form).catch(() => undefined)
  await eventually(async () => {
    const tmp = await readdir(join(data, 'blobs', 'tmp')).catch(() => [])
    for (const f of tmp) if (((await stat(join(data, 'blobs', 'tmp', f)).catch(() => undefined))?.size ?? 0) > 1024 * 1024) return true
    return false
  }, 20_000, 'the upload to be under way')
  await kill(node)
  await upload
  node = await started(t, data)
  api = await signIn(node.url)
  const record = (await api('GET', `/datasets/${ds.id as string}`)).json
  t.same(record.versions, [], 'no version for an upload that was never acknowledged')
  t.same(await readdir(join(data, 'blobs', 'tmp')), [], 'temp files from the crash removed at start')
  await blobsAreWhole(t, data)
  t.notOk((await readdir(join(data, 'blobs'), { recursive: true })).map(p => basename(p)).includes(createHash('sha256').update(big).digest('hex')), 'the interrupted blob is not visible')
})
