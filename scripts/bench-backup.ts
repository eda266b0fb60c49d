/**
 * Online backup and restore (issue 9), against the old manual procedure,
 * measured in the same run:
 *
 *   1. site A founds a mesh, site B joins it (A enrols it as full); A gets
 *      `--records` datasets (through its DocStore) and `--file-bytes` of
 *      random files in `--files` datasets (uploaded through the HTTP API,
 *      one file per version); B syncs the records (B does not copy files:
 *      `files.copy` is off on both, so every file byte lives on A alone);
 *   2. baseline: A stops, its data directory is copied with `cp -a` (timed),
 *      A starts again and the two re-peer;
 *   3. a client creates datasets on A through the API, one after another,
 *      while `GET /backup` streams the archive to a file (timed; A's RSS
 *      sampled); the writer stops, then `verifyBackup` reads it all back
 *      (timed). Together these are what `dw backup` does;
 *   4. once B holds everything A holds, A stops for good; `restoreBackup`
 *      builds a new data directory from the archive (timed), the restored
 *      node starts and re-peers with B, and the catch-up is timed until it
 *      holds every record B holds with the same heads (and B everything it
 *      holds: the states must be equal); every file is then downloaded from
 *      the restored node and checked by sha256 (B never had the bytes, so
 *      they can only come from the archive).
 *
 *   npm run bench:backup                          # 10,000 records, 1 GiB of files
 *   npm run bench:backup -- --quick               # 1,000 records, 64 MiB
 *   node scripts/bench-backup.ts --records 20000 --file-bytes 2GiB --files 32
 *
 * Each node runs in a child process of its own (scripts/bench-backup-node.ts);
 * the backup client, the writer, verify and restore run in this process, as
 * `dw backup` / `dw restore` would in theirs. Every wait is bounded
 * (`--timeout-s`, default 600, for each sync wait; transfers get at least
 * 2 minutes or 5 MB/s). Exits non-zero if a file differs, a blob is missing
 * or the restored node does not converge. Progress on stderr, the markdown
 * report on stdout. Temp directories are removed at the end, also on failure.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, rmSync } from 'node:fs'
import { readFile, rm, stat } from 'node:fs/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { parseArgs, promisify } from 'node:util'
import tar from 'tar-stream'
import { initNode } from '../src/node.ts'
import { restoreBackup, verifyBackup, type RestoreResult, type VerifyResult } from '../src/backup/restore.ts'
import { DB_PREFIX, unframeEntries } from '../src/backup/archive.ts'
import { multipartBody } from '../src/cli/multipart.ts'
import type { HeadsEntry, NodeInfo } from './bench-backup-node.ts'
import {
  ADMIN_PASSWORD, bytes, count, datasetPayload, enrol, httpJson, intOption, machineLine, mib, now, progress, rate, ratio,
  removeTempDirs, secs, sleep, table, tempDir, waitUntil, withTimeout
} from './bench-util.ts'
import { forkAgent } from './bench-ipc.ts'
import { writeRandomFile } from './random-file.ts'

const MiB = 1024 * 1024
const run = promisify(execFile)

/** `123`, `64MiB`, `1GiB`, `512M`: binary units. */
function sizeOption (value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  const m = /^([\d_,]+)\s*(k|ki|kib|m|mi|mib|g|gi|gib)?b?$/i.exec(value.trim())
  const unit = { k: 1024, m: MiB, g: 1024 * MiB }[(m?.[2] ?? '').charAt(0).toLowerCase() as 'k' | 'm' | 'g'] ?? 1
  const n = m === null ? NaN : intOption(m[1], name, 0) * unit
  if (!Number.isSafeInteger(n)) {
    console.error(`--${name} must be a size in bytes (e.g. 1073741824, 64MiB, 1GiB)`)
    process.exit(2)
  }
  return n
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    records: { type: 'string' },
    'file-bytes': { type: 'string' },
    files: { type: 'string' },
    'timeout-s': { type: 'string' }
  }
})
const quick = values.quick === true
const RECORDS = intOption(values.records, 'records', quick ? 1000 : 10_000)
const FILE_BYTES = sizeOption(values['file-bytes'], 'file-bytes', quick ? 64 * MiB : 1024 * MiB)
const FILES = Math.max(1, intOption(values.files, 'files', 16))
const TIMEOUT = intOption(values['timeout-s'], 'timeout-s', 600) * 1000
/** Any transfer of `n` bytes: at least 2 minutes, or 5 MB/s, whichever is longer. */
const transferTimeout = (n: number): number => Math.ceil(Math.max(120_000, n / 5e6 * 1000))
const NODE_SCRIPT = new URL('./bench-backup-node.ts', import.meta.url).pathname

// ---------------------------------------------------------------- node processes

interface Remote {
  name: string
  proc: ChildProcess
  call: <T>(cmd: string, args?: unknown, timeoutMs?: number) => Promise<T>
  /** Stops the node (bounded) and waits for the process to exit; kills it if it does not. */
  stop: () => Promise<void>
}

const children = new Set<ChildProcess>()

function spawnNode (name: string): Remote {
  const { proc, call, exited } = forkAgent(NODE_SCRIPT, name, TIMEOUT)
  children.add(proc)
  proc.on('exit', () => { children.delete(proc) })
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    await call('stop', undefined, 60_000).catch((err: Error) => { progress(`${name}: stop: ${err.message}`) })
    await exited()
  }
  return { name, proc, call, stop }
}

async function startNodeProcess (name: string, dataDir: string): Promise<{ remote: Remote, info: NodeInfo }> {
  const remote = spawnNode(name)
  const info = await remote.call<NodeInfo>('start', { dataDir }, 120_000)
  return { remote, info }
}

/** Resident memory of a process (from /proc; 0 where there is none). */
async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

// ---------------------------------------------------------------- cleanup

let work: string | undefined
let cleaning: Promise<void> | undefined
async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map(async proc => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise<void>(resolve => { proc.once('exit', () => { resolve() }) })
      // The child stops its node when the channel closes.
      proc.disconnect()
      await withTimeout(exited, 20_000, 'a node process to exit').catch(() => { proc.kill('SIGKILL') })
    }))
    await removeTempDirs()
  })()
  await cleaning
}

// Last resort (an uncaught error, process.exit): nothing may outlive the run.
process.on('exit', () => {
  for (const proc of children) proc.kill('SIGKILL')
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the nodes and removing ${work ?? 'temp files'}`)
    void cleanup().finally(() => process.exit(130))
  })
}

// ---------------------------------------------------------------- HTTP

function get (url: string, token: string, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) }, resolve)
    req.on('error', reject)
    req.end()
  })
}

async function failed (res: IncomingMessage, what: string): Promise<Error> {
  let body = ''
  for await (const chunk of res) body += (chunk as Buffer).toString()
  return new Error(`${what}: HTTP ${String(res.statusCode)} ${body.slice(0, 300)}`)
}

/** `GET /backup` into `path`, as `dw backup` streams it. */
async function backupToFile (node: NodeInfo, path: string, timeoutMs: number): Promise<{ size: number, estimate: number, contentType: string }> {
  const res = await get(`${node.url}/backup`, node.token, timeoutMs)
  if (res.statusCode !== 200) throw await failed(res, 'GET /backup')
  let size = 0
  res.on('data', (chunk: Buffer) => { size += chunk.length })
  await pipeline(res, createWriteStream(path, { flags: 'wx', mode: 0o600 }))
  return { size, estimate: Number(res.headers['x-dw-backup-estimate'] ?? NaN), contentType: String(res.headers['content-type']) }
}

/** Streams a download through sha256; returns the hash and the byte count. */
async function downloadHash (node: NodeInfo, path: string, timeoutMs: number): Promise<{ sha256: string, size: number }> {
  const res = await get(`${node.url}${path}`, node.token, timeoutMs)
  if (res.statusCode !== 200) throw await failed(res, `GET ${path}`)
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of res) { hash.update(chunk as Buffer); size += (chunk as Buffer).length }
  return { sha256: hash.digest('hex'), size }
}

interface Uploaded { datasetId: string, versionId: string, name: string, sha256: string, size: number }

/** One file as one new version of a new dataset, streamed from disk as `dw version add` sends it. */
async function upload (node: NodeInfo, path: string, name: string, size: number): Promise<Uploaded> {
  const created = await httpJson(node.url, 'POST', '/datasets', { name: `backup bench ${name}`, tags: ['bench', 'files'] }, node.token) as { id: string }
  const body = multipartBody({ note: 'bench-backup' }, [{ name, path, size, mediaType: 'application/octet-stream' }])
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(`${node.url}/datasets/${created.id}/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.token}`, 'content-type': body.contentType, 'content-length': String(body.length) },
      signal: AbortSignal.timeout(transferTimeout(size))
    }, resolve)
    req.on('error', reject)
    pipeline(body.body, req).catch(reject)
  })
  if (res.statusCode !== 201) throw await failed(res, `upload ${name}`)
  let text = ''
  for await (const chunk of res) text += (chunk as Buffer).toString()
  const version = JSON.parse(text) as { id: string, files: Array<{ name: string, sha256: string, size: number }> }
  const file = version.files[0]
  if (file === undefined) throw new Error(`upload ${name}: the version lists no file`)
  return { datasetId: created.id, versionId: version.id, name: file.name, sha256: file.sha256, size: file.size }
}

async function peer (from: NodeInfo, to: NodeInfo, name: string): Promise<void> {
  await httpJson(from.url, 'POST', '/peers', { multiaddr: to.address, name }, from.token)
}

// ---------------------------------------------------------------- state

function norm (s: HeadsEntry[]): string {
  return JSON.stringify(s.map(([k, h]): HeadsEntry => [k, [...h].sort()]).sort((x, y) => x[0] < y[0] ? -1 : 1))
}

/** Waits (bounded) until both nodes hold the same replicated records with the same heads. */
async function waitEqual (x: Remote, y: Remote, timeoutMs: number, what: string): Promise<number> {
  let n = 0
  await waitUntil(async () => {
    const [a, b] = await Promise.all([x.call<HeadsEntry[]>('heads'), y.call<HeadsEntry[]>('heads')])
    n = a.length
    return norm(a) === norm(b)
  }, timeoutMs, what, 250)
  return n
}

/** The dataset ids whose records an archive's database holds (keys are raw LevelDB keys, sublevel prefix and all). */
async function datasetIdsInArchive (path: string): Promise<Set<string>> {
  const ids = new Set<string>()
  const extract = tar.extract()
  const file = createReadStream(path)
  file.on('error', err => { extract.destroy(err) })
  file.pipe(extract as unknown as NodeJS.WritableStream)
  for await (const entry of extract) {
    const body = entry as unknown as Readable
    if (!entry.header.name.startsWith(DB_PREFIX)) { body.resume(); await finished(body); continue }
    const parts: Buffer[] = []
    for await (const chunk of body) parts.push(chunk as Buffer)
    for (const [key] of unframeEntries(Buffer.concat(parts))) {
      const m = /dataset\/([A-Za-z0-9_-]+)$/.exec(key.toString('latin1'))
      if (m?.[1] !== undefined) ids.add(m[1])
    }
  }
  return ids
}

async function dirBytes (dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', dir])
  return Number(stdout.split(/\s/)[0])
}

// ---------------------------------------------------------------- the run

interface Writer { done: Array<{ id: string, at: number }>, stop: () => Promise<void> }

/** One client creating datasets on `node` through the API, one request after another, until stopped. */
function startWriter (node: NodeInfo, offset: number): Writer {
  const done: Array<{ id: string, at: number }> = []
  let stopping = false
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      const created = await httpJson(node.url, 'POST', '/datasets', datasetPayload(offset + i), node.token) as { id: string }
      done.push({ id: created.id, at: now() })
    }
  })()
  loop.catch(() => {})
  return {
    done,
    stop: async () => {
      stopping = true
      await withTimeout(loop, 60_000, 'the writer to stop')
    }
  }
}

interface Result {
  dirBytes: number
  cpMs: number
  downMs: number
  backupMs: number
  archiveBytes: number
  estimate: number
  contentType: string
  verifyMs: number
  verified: VerifyResult
  restoreMs: number
  restored: RestoreResult
  startMs: number
  catchUpMs: number
  convergedRecords: number
  downloadMs: number
  fileBytes: number
  filesOk: number
  files: number
  mismatches: string[]
  written: { before: number, during: number, after: number, inArchive: number, duringInArchive: number }
  pulledBack: number
  rss: { before: number, peak: number }
  recordsOnA: number
  buildMs: number
  uploadMs: number
}

async function runBench (): Promise<Result> {
  work = await tempDir('dw-bench-backup-')
  const aDir = join(work, 'site-a')
  const bDir = join(work, 'site-b')
  const copyDir = join(work, 'site-a-copy')
  const archive = join(work, 'site-a.tar')
  const restoredDir = join(work, 'site-a-restored')
  const common = { adminPassword: ADMIN_PASSWORD, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], files: { copy: false } }

  // 1. Two sites, A holding the records and the files.
  progress('initialising site A (founds the mesh) and site B (joins it)')
  await initNode({ ...common, dataDir: aDir, name: 'site-a' })
  await initNode({ ...common, dataDir: bDir, name: 'site-b', join: true })
  let a = await startNodeProcess('site-a', aDir)
  const b = await startNodeProcess('site-b', bDir)
  const role = await enrol(a.info, b.info, { names: ['site-a', 'site-b'] })
  if (role !== 'full') throw new Error(`site B joined as ${role}, expected full`)

  progress(`creating ${count(RECORDS)} datasets on A (DocStore, in A's process)`)
  const built = await a.remote.call<{ ms: number }>('createDirect', { count: RECORDS })
  progress(`  ${secs(built.ms)}`)
  const fileSize = Math.ceil(FILE_BYTES / FILES)
  progress(`uploading ${FILES} files of ${mib(fileSize)} of random bytes to A (HTTP, multipart, one at a time)`)
  const uploaded: Uploaded[] = []
  const tUp = now()
  for (let i = 0; i < FILES; i++) {
    const size = Math.min(fileSize, FILE_BYTES - i * fileSize)
    if (size <= 0) break
    const name = `random-${String(i).padStart(2, '0')}.bin`
    const path = join(work, name)
    const sha256 = await writeRandomFile(path, size)
    const up = await upload(a.info, path, name, size)
    await rm(path, { force: true })
    if (up.sha256 !== sha256 || up.size !== size) throw new Error(`upload ${name}: the node stored ${up.sha256} (${up.size} B), the file is ${sha256} (${size} B)`)
    uploaded.push(up)
  }
  const uploadMs = now() - tUp
  const fileBytes = uploaded.reduce((n, f) => n + f.size, 0)
  progress(`  ${uploaded.length} files, ${mib(fileBytes)} in ${secs(uploadMs)}`)
  progress('waiting for B to hold every record A holds')
  const recordsOnA = await waitEqual(a.remote, b.remote, TIMEOUT, 'A and B to converge before the baseline')
  progress(`  converged: ${count(recordsOnA)} replicated records on both`)

  // 2. Baseline: the old manual procedure.
  const sizeOfA = await dirBytes(aDir)
  progress(`baseline: stopping A, cp -a of its data directory (${mib(sizeOfA)}), starting A again`)
  const tDown = now()
  await a.remote.stop()
  const tCp = now()
  await run('cp', ['-a', aDir, copyDir], { timeout: transferTimeout(sizeOfA) })
  const cpMs = now() - tCp
  a = await startNodeProcess('site-a', aDir)
  const downMs = now() - tDown
  await rm(copyDir, { recursive: true, force: true })
  await peer(b.info, a.info, 'site-a')
  await peer(a.info, b.info, 'site-b')
  progress(`  cp -a ${secs(cpMs)}; A down for ${secs(downMs)}`)

  // 3. Backup through GET /backup while a client writes.
  progress('backup: a client creates datasets on A while GET /backup streams to a file')
  const writer = startWriter(a.info, RECORDS)
  await waitUntil(() => writer.done.length >= 20, 60_000, 'the writer to get going', 10)
  const pid = a.info.pid
  const rss = { before: await rssOf(pid), peak: 0 }
  rss.peak = rss.before
  const sampler = setInterval(() => { void rssOf(pid).then(r => { rss.peak = Math.max(rss.peak, r) }) }, 100)
  const tBackup = now()
  let got
  try {
    got = await backupToFile(a.info, archive, transferTimeout(sizeOfA))
  } finally {
    clearInterval(sampler)
  }
  const tBackupEnd = now()
  const backupMs = tBackupEnd - tBackup
  await sleep(500)
  await writer.stop()
  const written = {
    before: writer.done.filter(w => w.at < tBackup).length,
    during: writer.done.filter(w => w.at >= tBackup && w.at <= tBackupEnd).length,
    after: writer.done.filter(w => w.at > tBackupEnd).length,
    inArchive: 0,
    duringInArchive: 0
  }
  progress(`  ${mib(got.size)} in ${secs(backupMs)}; the writer created ${written.during} datasets meanwhile (${writer.done.length} in all)`)
  progress('verifyBackup')
  const tVerify = now()
  const verified = await verifyBackup(archive)
  const verifyMs = now() - tVerify
  progress(`  ${secs(verifyMs)}: ${count(verified.records)} records, ${verified.blobs} files`)
  const inArchive = await datasetIdsInArchive(archive)
  written.inArchive = writer.done.filter(w => inArchive.has(w.id)).length
  written.duringInArchive = writer.done.filter(w => w.at >= tBackup && w.at <= tBackupEnd && inArchive.has(w.id)).length
  const beforeMissing = writer.done.filter(w => w.at < tBackup && !inArchive.has(w.id)).length
  if (beforeMissing > 0) throw new Error(`${beforeMissing} datasets acknowledged before GET /backup was sent are not in the archive`)

  // 4. Restore, catch up with B, serve every file.
  progress('waiting for B to hold everything A holds (the writes after the snapshot live on B alone once A is gone)')
  await waitEqual(a.remote, b.remote, TIMEOUT, 'A and B to converge after the writer')
  await a.remote.stop()
  progress('restoreBackup into a new directory')
  const tRestore = now()
  const restored = await restoreBackup(archive, restoredDir)
  const restoreMs = now() - tRestore
  progress(`  ${secs(restoreMs)}: ${count(restored.records)} records, ${restored.blobs} files, ${restored.missingBlobs} missing`)
  const tStart = now()
  const r = await startNodeProcess('site-a-restored', restoredDir)
  const startMs = now() - tStart
  if (r.info.peerId !== a.info.peerId) throw new Error(`the restored node is ${r.info.peerId}, not site A (${a.info.peerId})`)
  progress('catch-up: re-peering the restored node with B; waiting until it holds every record B holds')
  const tCatch = now()
  await peer(b.info, r.info, 'site-a')
  await peer(r.info, b.info, 'site-b')
  const expected = await b.remote.call<HeadsEntry[]>('heads')
  const caught = await r.remote.call<{ ok: boolean, missing: number }>('waitHeads', { expected, timeoutMs: TIMEOUT }, TIMEOUT + 10_000)
  const catchUpMs = now() - tCatch
  if (!caught.ok) throw new ConvergenceError(`the restored node still lacks ${caught.missing} of B's ${expected.length} records after ${secs(TIMEOUT)}`)
  const convergedRecords = await waitEqual(r.remote, b.remote, 60_000, 'the restored node and B to hold identical state').catch((err: Error) => { throw new ConvergenceError(err.message) })
  progress(`  ${secs(catchUpMs)}; ${count(convergedRecords)} records with identical heads on both`)

  progress(`downloading every file from the restored node (sha256 against the upload)`)
  const mismatches: string[] = []
  const tDown2 = now()
  for (const f of uploaded) {
    const path = `/datasets/${f.datasetId}/versions/${f.versionId}/files/${encodeURIComponent(f.name)}`
    const got2 = await downloadHash(r.info, path, transferTimeout(f.size)).catch((err: Error) => ({ sha256: `error: ${err.message}`, size: -1 }))
    if (got2.sha256 !== f.sha256 || got2.size !== f.size) mismatches.push(`${f.name}: ${got2.sha256} (${got2.size} B), expected ${f.sha256} (${f.size} B)`)
  }
  const downloadMs = now() - tDown2
  progress(`  ${uploaded.length - mismatches.length}/${uploaded.length} byte-identical in ${secs(downloadMs)}`)

  await Promise.all([r.remote.stop(), b.remote.stop()])
  return {
    dirBytes: sizeOfA, cpMs, downMs, backupMs, archiveBytes: got.size, estimate: got.estimate, contentType: got.contentType,
    verifyMs, verified, restoreMs, restored, startMs, catchUpMs, convergedRecords, downloadMs, fileBytes,
    filesOk: uploaded.length - mismatches.length, files: uploaded.length, mismatches, written,
    pulledBack: writer.done.length - written.inArchive, rss, recordsOnA, buildMs: built.ms, uploadMs
  }
}

class ConvergenceError extends Error {
  override readonly name = 'ConvergenceError'
}

// ---------------------------------------------------------------- report

function mbps (n: number, vMs: number): string {
  return Number.isFinite(vMs) && vMs > 0 ? `${(n / 1e6 / (vMs / 1000)).toFixed(0)} MB/s` : 'n/a'
}

function report (r: Result): string {
  const lines: string[] = []
  lines.push(`## bench:backup (${new Date().toISOString().slice(0, 16)}Z)`, '')
  lines.push(`Machine: ${machineLine()}. Each node in a child process of its own; the backup client, verify and restore in the driver process.`, '')
  lines.push(`Site A: ${count(RECORDS)} datasets (~500-byte create bodies) and ${r.files} files of random bytes (${mib(r.fileBytes)}), ${count(r.recordsOnA)} replicated records in all; data directory ${mib(r.dirBytes)}. Site B: full node of the same mesh, synced, no file bytes.`, '')
  const toCaughtUp = r.restoreMs + r.startMs + r.catchUpMs
  const rows: string[][] = [
    ['baseline: `cp -a` of the stopped node\'s data directory', secs(r.cpMs), mbps(r.dirBytes, r.cpMs), '1.00x'],
    ['baseline: node down (stop + `cp -a` + start)', secs(r.downMs), '', ratio(r.downMs, r.cpMs)],
    [`GET /backup to a file, node running, a client writing (${mib(r.archiveBytes)})`, secs(r.backupMs), mbps(r.archiveBytes, r.backupMs), ratio(r.backupMs, r.cpMs)],
    ['verifyBackup (read back: blobs hashed, every record loaded)', secs(r.verifyMs), mbps(r.archiveBytes, r.verifyMs), ratio(r.verifyMs, r.cpMs)],
    ['`dw backup` in all (stream + verify); node down: 0', secs(r.backupMs + r.verifyMs), mbps(r.archiveBytes, r.backupMs + r.verifyMs), ratio(r.backupMs + r.verifyMs, r.cpMs)],
    ['restoreBackup into a new directory', secs(r.restoreMs), mbps(r.archiveBytes, r.restoreMs), ratio(r.restoreMs, r.cpMs)],
    ['start the restored node (fork until serving, logged in)', secs(r.startMs), '', ratio(r.startMs, r.cpMs)],
    [`catch-up: from its start until it holds every record B holds (after serving: ${secs(r.catchUpMs)})`, secs(r.startMs + r.catchUpMs), '', ratio(r.startMs + r.catchUpMs, r.cpMs)],
    ['archive to a caught-up node (restore + start + catch-up)', secs(toCaughtUp), '', ratio(toCaughtUp, r.cpMs)],
    ['download every file from the restored node (sha256)', secs(r.downloadMs), mbps(r.fileBytes, r.downloadMs), ratio(r.downloadMs, r.cpMs)]
  ]
  lines.push(table(['step', 'time', 'MB/s', 'ratio to `cp -a`'], rows), '')
  const w = r.written
  lines.push(table(['measure', 'value'], [
    ['archive size (x-dw-backup-estimate)', `${mib(r.archiveBytes)} (${Number.isFinite(r.estimate) ? mib(r.estimate) : 'n/a'}); ${r.contentType}`],
    ['records in the archive / restored', `${count(r.verified.records)} / ${count(r.restored.records)}`],
    ['files restored (missing blobs)', `${r.restored.blobs} of ${r.files}, ${mib(r.restored.blobBytes)} (${r.restored.missingBlobs} missing)`],
    ['datasets the client created during the backup (in the archive)', `${count(w.during)} (${count(w.duringInArchive)}); ${rate(w.during, r.backupMs)}`],
    ['datasets the client created in all: before / during / after the backup', `${count(w.before)} / ${count(w.during)} / ${count(w.after)}`],
    ['of those, not in the archive: pulled back from B after the restore', count(r.pulledBack)],
    ['restored node and B converged (records with identical heads)', count(r.convergedRecords)],
    ['files byte-identical from the restored node', `${r.filesOk}/${r.files}${r.filesOk === r.files ? '' : ' (MISMATCH)'}`],
    ['A\'s RSS before / peak during the backup', `${bytes(r.rss.before)} / ${bytes(r.rss.peak)}`]
  ]), '')
  lines.push('MB/s is 10^6 bytes per second: of the data directory for `cp -a`, of the archive for backup, verify and restore, of the file bytes for the download. ' +
    'The writer is one client sending POST /datasets to A, one request at a time, from before the backup starts until after it ends. ' +
    'The files were written just before, so `cp -a` and the backup both read them from the page cache. ' +
    'The restored node dials B from its restored peer book as soon as it starts, so the catch-up is timed from its start; "after serving" is what was left once it answered HTTP and B re-added it. ' +
    `Setup (not timed above): ${count(RECORDS)} datasets in ${secs(r.buildMs)}, files uploaded in ${secs(r.uploadMs)}.`)
  if (r.mismatches.length > 0) lines.push('', 'Files that differ:', '', ...r.mismatches.map(m => `- ${m}`))
  return lines.join('\n')
}

async function main (): Promise<void> {
  progress(`bench-backup: ${count(RECORDS)} records, ${mib(FILE_BYTES)} of files in ${FILES}; sync waits bounded at ${secs(TIMEOUT)}`)
  let result: Result
  try {
    result = await runBench()
  } finally {
    await cleanup()
  }
  console.log(report(result))
  if (result.filesOk !== result.files || result.restored.missingBlobs > 0) process.exitCode = 1
}

try {
  await main()
} catch (err) {
  console.error(err)
  process.exitCode = 1
}
