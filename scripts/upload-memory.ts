/**
 * Shows that the node streams file bytes: starts a real node (`dw start` as
 * a child process), uploads a large generated file through the HTTP API with
 * `dw version add`, downloads it with `dw file get`, and samples the node's
 * RSS throughout. Prints a table; exits non-zero if the node grew by more
 * than 150 MiB or the bytes differ.
 *
 *   node scripts/upload-memory.ts [--size-mb 1024]
 */
import { spawn, execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parseArgs } from 'node:util'

const MiB = 1024 * 1024
const LIMIT_MIB = 150
const DW = fileURLToPath(new URL('../bin/dw.ts', import.meta.url))
const run = promisify(execFile)

const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '1024' } } })
const sizeMiB = Number(values['size-mb'])

async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

const work = await mkdtemp(join(tmpdir(), 'dw-upload-memory-'))
const data = join(work, 'node')
const env = { ...process.env, DW_ADMIN_PASSWORD: 'upload memory check' }
let child: ReturnType<typeof spawn> | undefined
try {
  const source = join(work, 'big.bin')
  const out = createWriteStream(source)
  const block = randomBytes(MiB)
  for (let i = 0; i < sizeMiB; i++) {
    block[0] = i & 255
    if (!out.write(Buffer.from(block))) await new Promise(resolve => out.once('drain', resolve))
  }
  await new Promise(resolve => out.end(resolve))
  const expected = await sha256File(source)

  await run(process.execPath, [DW, 'init', '--data', data, '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], { env })
  child = spawn(process.execPath, [DW, 'start', '--data', data], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('node did not start')), 30_000)
    child?.stdout?.on('data', (s: Buffer) => { if (s.toString().includes('serving')) { clearTimeout(timer); resolve() } })
  })
  const pid = child.pid as number
  await new Promise(resolve => setTimeout(resolve, 500))
  const idle = await rssOf(pid)
  let peak = idle
  const sampler = setInterval(() => { rssOf(pid).then(r => { peak = Math.max(peak, r) }, () => {}) }, 50)

  const { stdout: created } = await run(process.execPath, [DW, 'dataset', 'create', 'big', '--data', data, '--json'], { env })
  const datasetId = JSON.parse(created).id as string
  let started = performance.now()
  const { stdout: added } = await run(process.execPath, [DW, 'version', 'add', datasetId, source, '--data', data, '--json'], { env, maxBuffer: 10 * MiB })
  const upSeconds = (performance.now() - started) / 1000
  const peakUp = peak
  const versionId = JSON.parse(added).id as string
  const copy = join(work, 'copy.bin')
  started = performance.now()
  await run(process.execPath, [DW, 'file', 'get', datasetId, versionId, 'big.bin', '-o', copy, '--data', data], { env })
  const downSeconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  const same = await sha256File(copy) === expected
  const growth = (peak - idle) / MiB

  console.log('| measure | value |')
  console.log('|---|---|')
  console.log(`| file size | ${sizeMiB} MiB |`)
  console.log(`| upload through the API | ${(sizeMiB / upSeconds).toFixed(0)} MiB/s (${upSeconds.toFixed(1)} s) |`)
  console.log(`| download through the API | ${(sizeMiB / downSeconds).toFixed(0)} MiB/s (${downSeconds.toFixed(1)} s) |`)
  console.log(`| node RSS idle | ${(idle / MiB).toFixed(0)} MiB |`)
  console.log(`| node RSS peak (upload) | ${(peakUp / MiB).toFixed(0)} MiB |`)
  console.log(`| node RSS peak (overall) | ${(peak / MiB).toFixed(0)} MiB |`)
  console.log(`| peak growth | ${growth.toFixed(0)} MiB (limit ${LIMIT_MIB}) |`)
  console.log(`| byte-identical | ${same ? 'yes' : 'NO'} |`)
  if (!same || growth > LIMIT_MIB) process.exitCode = 1
} finally {
  child?.kill('SIGTERM')
  await new Promise(resolve => setTimeout(resolve, 1000))
  await rm(work, { recursive: true, force: true })
}
