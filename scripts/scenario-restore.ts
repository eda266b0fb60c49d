#!/usr/bin/env node
/**
 * Issue 9's acceptance, on real `dw` processes: a site restored from a copy
 * of its data directory loses nothing it writes next, with no `--full`.
 *
 *   npm run scenario:restore                      # the copy is made with cp -a
 *   npm run scenario:restore -- --mode backup     # dw backup / dw restore instead
 *   node scripts/scenario-restore.ts --runs 3 --keep-on-failure
 *
 * The scenario (A and B are two sites, each a `dw start` process):
 *   1. A founds the mesh, B joins (`dw init --join`); A adds B with
 *      `dw peer add --role full`, B adds A. A creates dataset a1; it reaches B.
 *      copy mode: B stopped, its data directory copied (`cp -a`), B started.
 *      backup mode: `dw backup` while B runs.
 *   2. B creates b1-b3; they reach A.
 *   3. Both stopped. copy mode: B's directory replaced by the copy (moved into
 *      place); backup mode: `dw restore` into a fresh directory. B starts
 *      alone and creates b4-b6 (B now lacks b1-b3, A lacks b4-b6).
 *   4. A starts; `dw sync` (no `--full`) on both.
 *   5. Pass when, within 60 s of A's `dw start`, both sites hold all seven
 *      datasets created in steps 1-3: a1 and b1-b6 (read every 100 ms from
 *      each node's GET /datasets, and confirmed with `dw dataset ls`).
 * Throughout, `dw peer ls --json` is polled on both running sites. A row of
 * site X about peer Y claims caught up when `behindPeer` is 0 (nothing of
 * Y's left to pull) or `peerBehind` is 0 (Y acknowledged everything of X's);
 * the run fails if such a claim is made while Y holds a dataset X lacks
 * (resp. X holds one Y lacks). Each poll reads both sites' datasets before
 * and after the `dw peer ls` calls, and a record counts as missing only if
 * it was on the one side before the claim and still not on the other after
 * it. While records are being written (steps 1-2) a claim may be made in the
 * milliseconds before an offer arrives, so there it must hold in two
 * consecutive polls; from step 3 on nothing is written, and one poll fails.
 *
 * Ports are fixed per run, below the ephemeral range, so a restarted node
 * takes its own again. Every wait is bounded; child processes are killed on
 * exit. Prints each step with timings and ends with PASS or FAIL (exit 1).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { restartablePorts } from '../test/helpers/ports.ts'

const DW = fileURLToPath(new URL('../bin/dw.ts', import.meta.url))
const ADMIN_PASSWORD = 'scenario-admin-password-1'

const USAGE = 'usage: node scripts/scenario-restore.ts [--mode copy|backup] [--runs 1] [--limit-s 60] [--keep|--keep-on-failure]'

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'copy' },
    runs: { type: 'string', default: '1' },
    'limit-s': { type: 'string', default: '60' },
    keep: { type: 'boolean', default: false },
    'keep-on-failure': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})
if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
const MODE = values.mode
if (MODE !== 'copy' && MODE !== 'backup') {
  process.stderr.write(`--mode is copy or backup, not ${MODE}\n${USAGE}\n`)
  process.exit(2)
}
const RUNS = Number(values.runs)
const LIMIT_MS = Number(values['limit-s']) * 1000
if (!Number.isInteger(RUNS) || RUNS < 1 || !(LIMIT_MS > 0)) {
  process.stderr.write(`${USAGE}\n`)
  process.exit(2)
}

/** Every child this script started: killed if the script exits early. */
const children = new Set<ChildProcess>()
process.on('exit', () => { for (const child of children) child.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: killing ${children.size} child process(es)\n`)
    process.exit(130)
  })
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

let runStarted = Date.now()
function log (message: string): void {
  process.stdout.write(`[${secs(Date.now() - runStarted).padStart(7)}] ${message}\n`)
}

/** Runs `fn`, logs how long it took. */
async function step<T> (what: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now()
  log(`${what} ...`)
  const result = await fn()
  log(`${what}: done in ${secs(Date.now() - started)}`)
  return result
}

interface Run { code: number | null, stdout: string, stderr: string }

/** One `dw` command as a child process, killed after `timeoutMs`. */
async function dw (args: string[], timeoutMs = 60_000): Promise<Run> {
  const child = spawn(process.execPath, [DW, ...args], { env: { ...process.env, DW_ADMIN_PASSWORD: ADMIN_PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => { stderr += `\n(killed after ${timeoutMs} ms)`; child.kill('SIGKILL') }, timeoutMs)
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  clearTimeout(timer)
  children.delete(child)
  return { code, stdout, stderr }
}

async function dwJson<T = any> (args: string[], timeoutMs?: number): Promise<T> {
  const run = await dw([...args, '--json'], timeoutMs)
  if (run.code !== 0) throw new Error(`dw ${args.join(' ')} exited ${run.code}: ${run.stderr.trim()}`)
  return JSON.parse(run.stdout) as T
}

/** Polls `check` until it returns true; throws after `ms`. */
async function waitFor (what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(200)
  }
  throw new Error(`timed out after ${secs(ms)} waiting for ${what}`)
}

interface Site {
  name: 'A' | 'B'
  data: string
  http: number
  listen: number
  peerId: string
  multiaddr: string
  child?: ChildProcess
  exited?: Promise<number | null>
  /** Everything the current `dw start` wrote to stderr. */
  stderr: string
  /** An admin session on the running node. */
  token?: string
}

async function init (site: Site, join: boolean): Promise<void> {
  const made = await dwJson<{ peerId: string, addresses: string[] }>(['init', '--data', site.data, '--name', `site-${site.name.toLowerCase()}`,
    '--http', `127.0.0.1:${site.http}`, '--listen', `/ip4/127.0.0.1/tcp/${site.listen}`, ...(join ? ['--join'] : [])])
  site.peerId = made.peerId
  site.multiaddr = made.addresses[0] as string
}

/** `dw start`, once it prints its "serving" line (bounded). */
async function start (site: Site): Promise<void> {
  const child = spawn(process.execPath, [DW, 'start', '--data', site.data], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  site.child = child
  site.stderr = ''
  site.token = undefined
  site.exited = new Promise(resolve => child.on('exit', code => { children.delete(child); resolve(code) }))
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`site ${site.name}: dw start did not serve within 60 s: ${output}`)) }, 60_000)
    const look = (s: string): void => {
      output += s
      if (/serving https?:\/\/\S+ as peer \S+/.test(output)) { clearTimeout(timer); resolve() }
    }
    child.stdout.setEncoding('utf8').on('data', look)
    child.stderr.setEncoding('utf8').on('data', (s: string) => { site.stderr += s; look(s) })
    void site.exited?.then(code => { clearTimeout(timer); reject(new Error(`site ${site.name}: dw start exited ${code}: ${output}`)) })
  })
}

const running = (site: Site): boolean => site.child !== undefined && site.child.exitCode === null && site.child.signalCode === null

/** SIGTERM, then SIGKILL if it has not exited within 20 s. */
async function stop (site: Site): Promise<void> {
  const child = site.child
  if (child === undefined) return
  site.child = undefined
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => { log(`site ${site.name} did not stop within 20 s: SIGKILL`); child.kill('SIGKILL') }, 20_000)
  await site.exited
  clearTimeout(timer)
}

/**
 * Ids of the (live) datasets a site holds, from its HTTP API (GET /datasets
 * as admin): the polls read holdings just before and after each
 * `dw peer ls`, and a `dw` process takes seconds to start on a busy machine.
 * The verdict is confirmed with `dw dataset ls` at the end.
 */
async function holdings (site: Site): Promise<Set<string>> {
  site.token ??= await login(site)
  const res = await fetch(`http://127.0.0.1:${site.http}/datasets?limit=1000`, { headers: { authorization: `Bearer ${site.token}` }, signal: AbortSignal.timeout(30_000) })
  if (res.status === 401) site.token = undefined
  if (!res.ok) throw new Error(`GET /datasets on ${site.name}: ${res.status}`)
  const page = await res.json() as { items: Array<{ id: string, deleted?: boolean }>, next?: string }
  if (page.next !== undefined) throw new Error(`GET /datasets on ${site.name}: more than one page`)
  return new Set(page.items.filter(d => d.deleted !== true).map(d => d.id))
}

async function login (site: Site): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${site.http}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }), signal: AbortSignal.timeout(30_000)
  })
  if (!res.ok) throw new Error(`login on ${site.name}: ${res.status}`)
  return (await res.json() as { token: string }).token
}

/** The same, through `dw dataset ls --json`. */
async function listed (site: Site): Promise<Set<string>> {
  const items = await dwJson<Array<{ id: string, deleted?: boolean }>>(['dataset', 'ls', '--data', site.data], 60_000)
  return new Set(items.filter(d => d.deleted !== true).map(d => d.id))
}

interface PeerRow { peerId: string, connected?: boolean, behindPeer?: number | null, peerBehind?: number | null }

async function create (site: Site, name: string): Promise<string> {
  return (await dwJson<{ id: string }>(['dataset', 'create', name, '--data', site.data])).id
}

/**
 * Polls `dw peer ls --json` on every running site until stopped, holding
 * every caught-up claim to the datasets both sites hold just before and
 * just after it.
 */
class Monitor {
  /** From here on nothing is written: a false claim fails in a single poll. */
  quiet = false
  /** Each false claim, with how many polls made it. */
  readonly violations = new Map<string, number>()
  /** When each site was first seen holding every expected dataset (after `watchFrom`). */
  readonly heldAll = new Map<string, number>()
  readonly expected = new Map<string, string>()
  watchFrom = Infinity
  polls = 0
  claims = 0
  #candidates = new Map<string, Set<string>>()
  #stopped = false
  #loop: Promise<void> | undefined
  #watch: Promise<void> | undefined
  readonly sites: Site[]
  readonly names = new Map<string, string>()

  constructor (sites: Site[]) { this.sites = sites }

  start (): void { this.#loop = this.#run() }

  /** From `from` on, also reads holdings every 100 ms (cheap), to time when each site holds everything. */
  watch (from: number): void {
    this.watchFrom = from
    this.#watch = (async () => {
      while (!this.#stopped && this.heldAll.size < this.sites.length) {
        await Promise.all(this.sites.filter(running).map(async s => { this.#saw(s, await holdings(s).catch(() => undefined), Date.now()) }))
        await sleep(100)
      }
    })()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    await this.#loop
    await this.#watch
  }

  #saw (site: Site, held: Set<string> | undefined, at: number): void {
    if (held !== undefined && at >= this.watchFrom && !this.heldAll.has(site.name) && [...this.expected.keys()].every(id => held.has(id))) {
      this.heldAll.set(site.name, at)
      log(`monitor: site ${site.name} holds all ${this.expected.size} datasets, ${secs(at - this.watchFrom)} after A started`)
    }
  }

  async #run (): Promise<void> {
    while (!this.#stopped) {
      await this.poll().catch((err: unknown) => { log(`monitor: ${String(err)}`) })
      await sleep(100)
    }
  }

  #label (ids: Iterable<string>): string {
    return [...ids].map(id => this.names.get(id) ?? id).sort().join(', ')
  }

  async poll (): Promise<void> {
    const up = this.sites.filter(running)
    if (up.length === 0) return
    const read = async (s: Site): Promise<Set<string> | undefined> => await holdings(s).catch(() => undefined)
    const before = await Promise.all(up.map(read))
    const rows = await Promise.all(up.map(async s => await dwJson<PeerRow[]>(['peer', 'ls', '--data', s.data], 30_000).catch(() => undefined)))
    const after = await Promise.all(up.map(read))
    const at = Date.now()
    this.polls++
    const candidates = new Map<string, Set<string>>()
    up.forEach((x, i) => {
      this.#saw(x, after[i], at)
      up.forEach((y, j) => {
        if (x === y) return
        const row = rows[i]?.find(r => r.peerId === y.peerId)
        const xBefore = before[i]; const xAfter = after[i]; const yBefore = before[j]; const yAfter = after[j]
        if (row === undefined || xBefore === undefined || xAfter === undefined || yBefore === undefined || yAfter === undefined) return
        const check = (field: 'behindPeer' | 'peerBehind', claim: string, from: Set<string>, to: Set<string>): void => {
          if (row[field] !== 0) return
          this.claims++
          const missing = new Set([...from].filter(id => !to.has(id)))
          if (missing.size === 0) return
          const key = `${x.name}:${y.name}:${field}`
          const what = `site ${x.name}'s dw peer ls says ${claim} (${field} 0), yet ${this.#label(missing)} ${missing.size === 1 ? 'is' : 'are'} missing`
          const seen = this.#candidates.get(key)
          if (this.quiet || (seen !== undefined && [...missing].some(id => seen.has(id)))) {
            this.violations.set(what, (this.violations.get(what) ?? 0) + 1)
            log(`monitor: VIOLATION: ${what}`)
          } else {
            candidates.set(key, missing)
            log(`monitor: (while writing) ${what}; fails if the next poll says so too`)
          }
        }
        check('behindPeer', `nothing left to pull from ${y.name}`, yBefore, xAfter)
        check('peerBehind', `${y.name} acknowledged everything of ${x.name}'s`, xBefore, yAfter)
      })
    })
    this.#candidates = candidates
  }
}

interface Outcome { pass: boolean, heldA?: number, heldB?: number, reasons: string[] }

async function scenario (dir: string): Promise<Outcome> {
  const [httpA, listenA, httpB, listenB] = await restartablePorts(4) as [number, number, number, number]
  const a: Site = { name: 'A', data: join(dir, 'site-a'), http: httpA, listen: listenA, peerId: '', multiaddr: '', stderr: '' }
  const b: Site = { name: 'B', data: join(dir, 'site-b'), http: httpB, listen: listenB, peerId: '', multiaddr: '', stderr: '' }
  const monitor = new Monitor([a, b])
  const reasons: string[] = []
  const copy = join(dir, 'site-b.copy')
  const archive = join(dir, 'site-b.tar')
  try {
    log(`mode ${MODE}; A on http ${httpA} / tcp ${listenA}, B on http ${httpB} / tcp ${listenB}; data under ${dir}`)
    // 1. Peered; A writes a1, which reaches B; then the copy of B.
    await step('step 1: dw init A (founds the mesh) and B (--join)', async () => { await Promise.all([init(a, false), init(b, true)]) })
    await step('step 1: dw start A and B', async () => { await Promise.all([start(a), start(b)]) })
    await step('step 1: dw peer add on both (A enrols B as full)', async () => {
      await dwJson(['peer', 'add', b.multiaddr, '--role', 'full', '--data', a.data])
      await dwJson(['peer', 'add', a.multiaddr, '--data', b.data])
      await waitFor('B to hold a roster naming it', async () => (await dwJson(['node', 'ls', '--data', b.data])).selfRole === 'full', 30_000)
    })
    monitor.start()
    await step('step 1: A creates a1; wait until B holds it', async () => {
      const a1 = await create(a, 'a1')
      monitor.names.set(a1, 'a1')
      monitor.expected.set(a1, 'a1')
      await waitFor('a1 on B', async () => (await holdings(b)).has(a1), 30_000)
    })
    if (MODE === 'copy') {
      await step('step 1: B stopped, cp -a of its data directory, B started again', async () => {
        await stop(b)
        await promisify(execFile)('cp', ['-a', b.data, copy])
        await start(b)
      })
    } else {
      await step('step 1: dw backup of B while it runs', async () => {
        const made = await dwJson<{ records: number, verified: boolean }>(['backup', '--data', b.data, '--to', archive], 120_000)
        log(`  backup: ${made.records} records, verified: ${made.verified}`)
      })
    }

    // 2. B writes b1-b3; they reach A.
    const first: string[] = []
    await step('step 2: B creates b1-b3; wait until A holds them', async () => {
      for (const name of ['b1', 'b2', 'b3']) {
        const id = await create(b, name)
        first.push(id)
        monitor.names.set(id, name)
        monitor.expected.set(id, name)
      }
      await waitFor('b1-b3 on A', async () => { const held = await holdings(a); return first.every(id => held.has(id)) }, 30_000)
    })

    // 3. Both stop; B goes back to the copy and writes b4-b6 alone.
    await step('step 3: A and B stopped', async () => { await Promise.all([stop(a), stop(b)]) })
    if (MODE === 'copy') {
      await step('step 3: B\'s data directory replaced by the copy', async () => {
        await rm(b.data, { recursive: true, force: true })
        await rename(copy, b.data)
      })
    } else {
      await step('step 3: dw restore into a fresh directory', async () => {
        b.data = join(dir, 'site-b.restored')
        const restored = await dwJson<{ records: number }>(['restore', '--from', archive, '--data', b.data], 120_000)
        log(`  restored ${restored.records} records into ${b.data}`)
      })
    }
    monitor.quiet = true
    await step('step 3: B started alone', async () => { await start(b) })
    const epoch = /dw: warning: (.*new feed epoch.*)/.exec(b.stderr)?.[1]
    log(`  B: ${epoch === undefined ? 'no new-epoch warning on stderr' : `warned: ${epoch}`}`)
    const second: string[] = []
    await step('step 3: B creates b4-b6', async () => {
      for (const name of ['b4', 'b5', 'b6']) {
        const id = await create(b, name)
        second.push(id)
        monitor.names.set(id, name)
        monitor.expected.set(id, name)
      }
    })
    const heldB = await holdings(b)
    log(`  before A starts, B lacks: ${[...monitor.expected].filter(([id]) => !heldB.has(id)).map(([, n]) => n).join(', ') || 'nothing'}`)

    // 4. A starts; dw sync on both, no --full.
    const aStarted = Date.now()
    monitor.watch(aStarted)
    await step('step 4: A started', async () => { await start(a) })
    await step('step 4: dw sync on A and B (no --full)', async () => {
      const syncs = await Promise.all([a, b].map(async s => ({ s, run: await dw(['sync', '--data', s.data, '--json', '--timeout', '30'], 60_000) })))
      for (const { s, run } of syncs) {
        log(`  dw sync on ${s.name}: exit ${run.code}${run.code === 0 ? '' : `: ${run.stderr.trim() || run.stdout.trim()}`}`)
        if (run.code !== 0) reasons.push(`dw sync on ${s.name} exited ${run.code}`)
      }
    })

    // 5. All seven on both, within the limit of A's start.
    await step(`step 5: wait until both sites hold all ${monitor.expected.size} datasets (${[...monitor.expected.values()].join(', ')})`, async () => {
      const deadline = aStarted + LIMIT_MS + 30_000
      while (Date.now() < deadline && monitor.heldAll.size < 2) await sleep(200)
    })
    // A few more polls once converged: the claims made then must hold too.
    const polls = monitor.polls
    await waitFor('two more polls', async () => monitor.polls >= polls + 2, 60_000).catch(() => {})
    await monitor.stop()

    const took = (site: Site): number | undefined => { const t = monitor.heldAll.get(site.name); return t === undefined ? undefined : t - aStarted }
    for (const site of [a, b]) {
      const ms = took(site)
      if (ms === undefined) reasons.push(`site ${site.name} never held all ${monitor.expected.size} datasets (waited ${secs(LIMIT_MS + 30_000)})`)
      else if (ms > LIMIT_MS) reasons.push(`site ${site.name} held all ${monitor.expected.size} datasets only ${secs(ms)} after A started (limit ${secs(LIMIT_MS)})`)
    }
    for (const [what, polls] of monitor.violations) reasons.push(`${what} (in ${polls} poll${polls === 1 ? '' : 's'})`)
    for (const site of [a, b]) {
      const held = await listed(site)
      const missing = [...monitor.expected].filter(([id]) => !held.has(id)).map(([, name]) => name)
      log(`  dw dataset ls on ${site.name}: ${held.size} datasets${missing.length === 0 ? '' : `; missing ${missing.join(', ')}`}`)
      if (missing.length > 0) reasons.push(`dw dataset ls on ${site.name} lacks ${missing.join(', ')}`)
    }
    for (const site of [a, b]) {
      const rows = await dwJson<PeerRow[]>(['peer', 'ls', '--data', site.data]).catch(() => [])
      for (const row of rows) log(`  final dw peer ls on ${site.name}: connected ${String(row.connected)}, behindPeer ${String(row.behindPeer)}, peerBehind ${String(row.peerBehind)}`)
    }
    log(`  ${monitor.polls} polls, ${monitor.claims} caught-up claims checked, ${[...monitor.violations.values()].reduce((n, k) => n + k, 0)} false`)
    return { pass: reasons.length === 0, heldA: took(a), heldB: took(b), reasons }
  } catch (err) {
    reasons.push(String((err as Error)?.stack ?? err))
    return { pass: false, reasons }
  } finally {
    await monitor.stop()
    await Promise.all([stop(a), stop(b)])
  }
}

const outcomes: Outcome[] = []
for (let run = 1; run <= RUNS; run++) {
  runStarted = Date.now()
  const dir = await mkdtemp(join(tmpdir(), 'dw-scenario-restore-'))
  process.stdout.write(`\n== run ${run}/${RUNS} (${MODE} mode)\n`)
  const outcome = await scenario(dir)
  outcomes.push(outcome)
  const held = (ms: number | undefined): string => ms === undefined ? 'never' : secs(ms)
  log(`run ${run}: ${outcome.pass ? 'pass' : 'FAIL'}: A held all after ${held(outcome.heldA)}, B after ${held(outcome.heldB)} (from A's start; limit ${secs(LIMIT_MS)})`)
  for (const reason of outcome.reasons) log(`  - ${reason}`)
  if (values.keep || (!outcome.pass && values['keep-on-failure'])) log(`kept ${dir}`)
  else await rm(dir, { recursive: true, force: true })
}

const failed = outcomes.filter(o => !o.pass).length
process.stdout.write(`\n${failed === 0 ? 'PASS' : 'FAIL'}: ${RUNS - failed}/${RUNS} run(s) of the restore scenario (${MODE} mode) passed\n`)
process.exitCode = failed === 0 ? 0 : 1
