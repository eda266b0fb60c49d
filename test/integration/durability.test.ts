// A write acknowledged with a 2xx survives `kill -9` of the node right after.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { ADMIN_PASSWORD, initialised, started } from '../cli/helpers.ts'

async function login (url: string): Promise<Record<string, string>> {
  const res = await fetch(`${url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) })
  const { token } = await res.json() as { token: string }
  return { authorization: `Bearer ${token}` }
}

t.test('acknowledged writes survive SIGKILL immediately after the response', async t => {
  const data = await initialised(t, 'durable')
  const first = await started(t, data)
  const auth = await login(first.url)
  const json = { ...auth, 'content-type': 'application/json' }

  // Many concurrent creates (they share group-commit fsyncs), then edits.
  const ids = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
    const res = await fetch(`${first.url}/datasets`, { method: 'POST', headers: json, body: JSON.stringify({ name: `d${i}`, tags: ['durable'] }) })
    t.equal(res.status, 201)
    return ((await res.json()) as { id: string }).id
  }))
  const bytes = randomBytes(1024 * 1024 + 3)
  const form = new FormData()
  form.append('file', new Blob([bytes]), 'payload.bin')
  form.append('file', new Blob(['x,y\n1,2\n']), 'table.csv')
  const upload = await fetch(`${first.url}/datasets/${ids[0] as string}/versions`, { method: 'POST', headers: auth, body: form })
  t.equal(upload.status, 201)
  const version = await upload.json() as { id: string }
  const patch = await fetch(`${first.url}/datasets/${ids[1] as string}`, { method: 'PATCH', headers: json, body: JSON.stringify({ description: 'the last write before the crash' }) })
  t.equal(patch.status, 200)
  first.child.kill('SIGKILL')
  await first.exited

  const second = await started(t, data)
  const auth2 = await login(second.url)
  const list = await (await fetch(`${second.url}/datasets?tag=durable&limit=1000`, { headers: auth2 })).json() as { items: Array<{ id: string }> }
  t.same(list.items.map(d => d.id).sort(), [...ids].sort(), 'every acknowledged create is there')
  const edited = await (await fetch(`${second.url}/datasets/${ids[1] as string}`, { headers: auth2 })).json() as { description: string }
  t.equal(edited.description, 'the last write before the crash')
  const file = await fetch(`${second.url}/datasets/${ids[0] as string}/versions/${version.id}/files/payload.bin`, { headers: auth2 })
  t.equal(file.status, 200)
  const got = Buffer.from(await file.arrayBuffer())
  t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(bytes).digest('hex'), 'file bytes intact')
})
