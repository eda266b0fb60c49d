/**
 * Proves the filesystem blob store streams: pushes a large generated file
 * through put and get while sampling RSS, and fails if memory grows with the
 * blob instead of staying flat.
 *
 *   node scripts/blob-memory.ts [--size-mb 1024]
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { FsBlobStore } from '../src/blobs/fs-store.ts'
import { writeRandomFile } from './random-file.ts'

const MiB = 1024 * 1024
const GROWTH_LIMIT_MIB = 150
const SAMPLE_MS = 50

const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '1024' } } })
const sizeMiB = Number(values['size-mb'])
if (!Number.isSafeInteger(sizeMiB) || sizeMiB <= 0) {
  console.error('--size-mb must be a positive integer')
  process.exit(2)
}

const work = await mkdtemp(join(tmpdir(), 'dw-blob-memory-'))
try {
  const sourcePath = join(work, 'source.bin')
  const expected = await writeRandomFile(sourcePath, sizeMiB * MiB)
  const store = await FsBlobStore.open(join(work, 'blobs'))

  const rssBefore = process.memoryUsage.rss()
  let peak = rssBefore
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, SAMPLE_MS)

  let started = performance.now()
  const info = await store.put(createReadStream(sourcePath, { highWaterMark: MiB }))
  const putSeconds = (performance.now() - started) / 1000
  peak = Math.max(peak, process.memoryUsage.rss())
  if (info.sha256 !== expected) throw new Error(`put hashed ${info.sha256}, expected ${expected}`)

  started = performance.now()
  const hash = createHash('sha256')
  let read = 0
  for await (const chunk of await store.get(info.sha256)) {
    hash.update(chunk as Uint8Array)
    read += (chunk as Uint8Array).byteLength
  }
  const getSeconds = (performance.now() - started) / 1000
  peak = Math.max(peak, process.memoryUsage.rss())
  clearInterval(sampler)
  const readSha256 = hash.digest('hex')
  if (readSha256 !== expected || read !== info.size) {
    throw new Error(`get returned ${read} bytes hashing ${readSha256}, expected ${info.size} bytes hashing ${expected}`)
  }
  await store.close()

  const growthMiB = (peak - rssBefore) / MiB
  const rows: Array<[string, string]> = [
    ['size', `${sizeMiB} MiB`],
    ['put', `${(sizeMiB / putSeconds).toFixed(0)} MiB/s (${putSeconds.toFixed(2)} s, incl. fsync)`],
    ['get', `${(sizeMiB / getSeconds).toFixed(0)} MiB/s (${getSeconds.toFixed(2)} s)`],
    ['RSS before', `${(rssBefore / MiB).toFixed(1)} MiB`],
    ['peak RSS', `${(peak / MiB).toFixed(1)} MiB`],
    ['peak growth', `${growthMiB.toFixed(1)} MiB (limit ${GROWTH_LIMIT_MIB} MiB)`],
    ['sha256', `${info.sha256} verified after put and get`]
  ]
  for (const [label, value] of rows) console.log(`${label.padEnd(12)} ${value}`)
  if (growthMiB > GROWTH_LIMIT_MIB) {
    console.error(`FAIL: RSS grew ${growthMiB.toFixed(1)} MiB while streaming ${sizeMiB} MiB`)
    process.exitCode = 1
  }
} finally {
  await rm(work, { recursive: true, force: true })
}

