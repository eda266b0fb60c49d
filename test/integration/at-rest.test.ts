import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import t from 'tap'
import { TEST_LOGIN } from '../helpers/node.ts'
import { initNode, startNode } from '../../src/node.ts'
import { ADMIN_PASSWORD, dw, dwJson, startedWith } from '../cli/helpers.ts'
import { tempDir } from '../helpers/tmp.ts'

// The usual umask: without care, LevelDB and the blob store make 0644 files and 0755 directories.
const previous = process.umask(0o022)
t.teardown(() => { process.umask(previous) })

async function mode (path: string): Promise<number> {
  return (await stat(path)).mode & 0o777
}

/** Every file and directory under `dir` that a group or other user could read, enter or write, with its mode. */
async function openToOthers (dir: string, root = dir): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (!entry.isFile() && !entry.isDirectory()) continue
    const m = await mode(path)
    if ((m & 0o077) !== 0) out.push(`${relative(root, path)} ${m.toString(8)}`)
    if (entry.isDirectory()) out.push(...await openToOthers(path, root))
  }
  return out
}

async function until (condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

void t.test('dw init and dw start keep the data directory and everything in it to the owner, whatever the umask', async (t) => {
  const data = join(await tempDir(t, 'dw-at-rest-'), 'site', 'data')
  const init = await dw(['init', '--data', data, '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], { env: { DW_ADMIN_PASSWORD: ADMIN_PASSWORD } })
  t.equal(init.code, 0, init.stderr)
  t.equal(await mode(data), 0o700, 'the data directory is 0700')
  t.equal(await mode(join(data, '..')), 0o755, 'a parent it had to create follows the umask: it is not the node\'s')
  t.same(await openToOthers(data), [], 'after init, nothing under it is open to others')
  const dbFiles = (await readdir(join(data, 'db'))).filter(name => name !== 'LOCK')
  t.ok(dbFiles.length > 0, 'LevelDB wrote files')
  for (const name of dbFiles) t.equal(await mode(join(data, 'db', name)), 0o600, `db/${name} is 0600`)

  const node = await startedWith(t, data)
  const at = ['--data', data]
  const work = await tempDir(t, 'dw-at-rest-work-')
  await writeFile(join(work, 'readings.csv'), 'station,depth\nross,120\n')
  const dataset = await dwJson(['dataset', 'create', 'Private readings', ...at])
  await dwJson(['version', 'add', dataset.id, join(work, 'readings.csv'), ...at])
  t.equal(await mode(join(data, 'node-token.json')), 0o600)
  t.same(await openToOthers(data), [], 'while running, with a blob stored, nothing under it is open to others')
  t.equal(await mode(data), 0o700)
  t.notMatch(node.stderr(), 'warning', 'nothing to warn about')
})

void t.test('dw start closes a data directory left open to others, and says so', async (t) => {
  const data = join(await tempDir(t, 'dw-at-rest-'), 'data')
  const init = await dw(['init', '--data', data, '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], { env: { DW_ADMIN_PASSWORD: ADMIN_PASSWORD } })
  t.equal(init.code, 0, init.stderr)
  // As a node made by an older version, or restored from a copy, would be.
  await chmod(data, 0o755)
  const node = await startedWith(t, data)
  t.equal(await mode(data), 0o700, 'tightened at start')
  await until(() => node.stderr().includes('data directory'), 5000, 'the warning')
  t.match(node.stderr(), `dw: warning: the data directory ${data} was mode 0755, open to other users; it is now 0700 (owner only)`)
})

void t.test('as a library, initNode and startNode close the data directory too', async (t) => {
  const data = join(await tempDir(t, 'dw-at-rest-lib-'), 'data')
  await mkdir(data, { mode: 0o755 })
  await chmod(data, 0o755)
  await initNode({ dataDir: data, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.equal(await mode(data), 0o700, 'an existing empty directory is closed by init')
  t.same(await openToOthers(data), [], 'and what init wrote is the owner\'s only')

  await chmod(data, 0o750)
  const warnings: string[] = []
  const node = await startNode({ dataDir: data, logger: false, warn: message => { warnings.push(message) } })
  t.teardown(node.stop)
  t.equal(await mode(data), 0o700)
  t.match(warnings, [/was mode 0750, open to other users; it is now 0700/])
})
