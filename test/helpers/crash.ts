// Shared by the crash tests (test/integration/crash-*.test.ts): a seeded
// PRNG for kill points, a signed-in API client, SIGKILL, and a blob check.
// Each case is its own file so tap's two jobs can run them side by side.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ADMIN_PASSWORD, type Started } from '../cli/helpers.ts'

/** A seeded PRNG (mulberry32), so that a failing kill point reproduces with CRASH_SEED. */
export function seededRandom (t: { comment: (msg: string) => void }): () => number {
  const seed = Number(process.env.CRASH_SEED ?? 20261126)
  t.comment(`CRASH_SEED=${seed}`)
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number, json: any }>

export async function signIn (url: string): Promise<Api> {
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

export async function kill (node: Started): Promise<void> {
  node.child.kill('SIGKILL')
  await node.exited
}

/** Every blob file in the store must hash to its name; nothing half-written is visible. */
export async function blobsAreWhole (t: any, data: string): Promise<void> {
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
