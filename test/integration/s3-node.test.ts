// A node created with `dw init --blobs s3` keeps file bytes in the bucket
// (real S3 protocol, served by s3rver), and syncs them to a filesystem node.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startS3rver } from '../helpers/s3rver.ts'
import { ADMIN_PASSWORD, dw, started } from '../cli/helpers.ts'
import { tempDir } from '../helpers/tmp.ts'

async function listFiles (dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
}

t.test('dw init --blobs s3: files go to the bucket and come back byte-identical', async t => {
  const s3 = await startS3rver()
  t.teardown(s3.close)
  const data = join(await tempDir(t, 'dw-s3-'), 'node')
  const env = { DW_ADMIN_PASSWORD: ADMIN_PASSWORD, DW_S3_ACCESS_KEY: s3.accessKey, DW_S3_SECRET_KEY: s3.secretKey }
  const bad = await dw(['init', '--data', data, '--blobs', 's3', '--s3-bucket', 'site-a'], { env })
  t.not(bad.code, 0, 'an S3 store without an endpoint is refused')
  t.match(bad.stderr, /DW_S3_ENDPOINT|endpoint/i)
  const init = await dw(['init', '--data', data, '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0',
    '--blobs', 's3', '--s3-endpoint', `http://127.0.0.1:${s3.port}`, '--s3-bucket', 'site-a', '--s3-prefix', 'north/'], { env })
  t.equal(init.code, 0, init.stderr)
  const node = await startedWithEnv(t, data, env)
  const auth = { authorization: `Bearer ${(await (await fetch(`${node.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) })).json() as any).token as string}` }
  const ds = await (await fetch(`${node.url}/datasets`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'in the bucket' }) })).json() as any
  const bytes = randomBytes(2 * 1024 * 1024 + 5)
  const form = new FormData()
  form.append('file', new Blob([bytes]), 'cores.bin')
  const version = await (await fetch(`${node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: auth, body: form })).json() as any
  const hash = createHash('sha256').update(bytes).digest('hex')
  t.ok((await listFiles(s3.directory)).some(f => f.includes(hash)), 'the blob is an object in the bucket')
  t.notOk((await listFiles(data)).some(f => f.includes(hash)), 'and not in the data directory')
  const got = await fetch(`${node.url}/datasets/${ds.id as string}/versions/${version.id as string}/files/cores.bin`, { headers: auth })
  t.ok(Buffer.from(await got.arrayBuffer()).equals(bytes), 'byte-identical')
})

/** `dw start` reads the S3 credentials from its environment. */
async function startedWithEnv (t: any, data: string, env: Record<string, string>): Promise<{ url: string }> {
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    return await started(t, data)
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]
  }
}

