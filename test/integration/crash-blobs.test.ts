// SIGKILL during a blob write: after a restart no partial blob is visible
// and the unacknowledged upload left no version.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { initialised, started } from '../cli/helpers.ts'
import { eventually } from '../helpers/mesh.ts'
import { blobsAreWhole, kill, signIn } from '../helpers/crash.ts'

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
