import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/tmp.ts'
import { dw } from './helpers.ts'

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

function notRunning (data: string): string {
  return `the node at ${data} is not running; start it with: dw start --data ${data}`
}

void t.test('commands that need the node say so when it is not running', async (t) => {
  const data = await tempDir(t)
  for (const args of [['status'], ['user', 'ls'], ['dataset', 'ls'], ['dataset', 'show', '01900000-0000-7000-8000-000000000000']]) {
    const run = await dw([...args, '--data', data])
    t.equal(run.code, 1, `dw ${args.join(' ')} exits 1`)
    t.equal(run.stderr, `dw: ${notRunning(data)}\n`)
    t.equal(run.stdout, '')
  }
})

void t.test('a token left by a killed node, or one whose port is closed, means not running', async (t) => {
  const stale = await tempDir(t)
  const dead = spawnSync(process.execPath, ['-e', '0']).pid
  await writeFile(join(stale, 'node-token.json'), JSON.stringify({ url: `http://127.0.0.1:${await closedPort()}`, token: 'x'.repeat(43), pid: dead }))
  const staleRun = await dw(['status', '--data', stale])
  t.not(staleRun.code, 0)
  t.match(staleRun.stderr, notRunning(stale))

  const refused = await tempDir(t)
  await writeFile(join(refused, 'node-token.json'), JSON.stringify({ url: `http://127.0.0.1:${await closedPort()}`, token: 'x'.repeat(43), pid: process.pid }))
  const refusedRun = await dw(['status', '--data', refused])
  t.not(refusedRun.code, 0)
  t.match(refusedRun.stderr, notRunning(refused))
})

void t.test('start on a directory without a node points at dw init', async (t) => {
  const data = join(await tempDir(t), 'empty')
  await mkdir(data)
  const run = await dw(['start', '--data', data])
  t.not(run.code, 0)
  t.match(run.stderr, `dw init --data ${data}`)
})

void t.test('usage errors exit non-zero with help hints', async (t) => {
  const unknown = await dw(['frobnicate'])
  t.not(unknown.code, 0)
  t.match(unknown.stderr, /unknown command/)
  const missingArg = await dw(['version', 'add', '01900000-0000-7000-8000-000000000000'])
  t.not(missingArg.code, 0)
  t.match(missingArg.stderr, /missing required argument 'file/)
  const badRole = await dw(['user', 'add', 'x', '--role', 'owner'])
  t.not(badRole.code, 0)
  t.match(badRole.stderr, /Allowed choices are admin, member/)
  const help = await dw(['--help'])
  t.equal(help.code, 0)
  for (const command of ['init', 'start', 'status', 'peer', 'sync', 'audit', 'user', 'dataset', 'version', 'file', 'pin', 'gc']) t.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'))
})

void t.test('a missing local file is reported before contacting the node', async (t) => {
  const data = await tempDir(t)
  const run = await dw(['version', 'add', '01900000-0000-7000-8000-000000000000', join(data, 'absent.csv'), '--data', data])
  t.not(run.code, 0)
  t.match(run.stderr, `no such file: ${join(data, 'absent.csv')}`)
  const dir = await dw(['version', 'add', '01900000-0000-7000-8000-000000000000', data, '--data', data])
  t.match(dir.stderr, 'is not a regular file')
})
