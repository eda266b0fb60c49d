/**
 * How long a real login takes while someone floods the node with bad ones
 * (issue 12: 40 bad logins in flight made a real login take 24 s).
 *
 *   node scripts/login-storm.ts [--flood 1000] [--logins 5] [--checks-at-once N]
 *
 * The node runs in a child process (this script started again with
 * --serve), so the flood's own HTTP work does not run on the node's event
 * loop. Every login that is timed is admin's, with the right password,
 * from 127.0.0.2 over a fresh connection; the flood comes from 127.0.0.1,
 * each request for a fresh unknown username (no per-name lock helps), over
 * connections opened beforehand so what is measured is the login path and
 * not the kernel's accept queue. Rows, all in one run against one node:
 *
 *   alone      nothing else happening
 *   burst      `--flood` bad logins sent at once, the real login right after;
 *              the next round starts once the whole burst was answered
 *   sustained  `--flood` bad logins kept in flight (each one answered is
 *              replaced at once) while the real logins run one by one
 *   healthz    the same with GET /healthz instead of bad logins: what any
 *              request flood costs, login limits or not
 *
 * --checks-at-once sets config.json "login.checksAtOnce" (default: the node's).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { initNode, startNode } from '../src/node.ts'
import { readConfig, writeConfig } from '../src/config.ts'
import { ADMIN_PASSWORD, count, intOption, machineLine, ms, progress, removeDir, summarize, table, tempDir, withTimeout } from './bench-util.ts'

const ANSWER_WITHIN_MS = 60_000

const { values } = parseArgs({
  options: {
    flood: { type: 'string' },
    logins: { type: 'string' },
    'checks-at-once': { type: 'string' },
    serve: { type: 'string' }
  }
})

/** The child: runs the node in DIR, prints its URL, stops on SIGTERM. */
async function serve (dataDir: string): Promise<void> {
  const node = await startNode({ dataDir })
  process.once('SIGTERM', () => { void node.stop().then(() => process.exit(0)) })
  process.stdout.write(`${node.url}\n`)
}

interface Answer { status: number, ms: number }

/** POST /auth/login from `localAddress` (any 127/8 address reaches a node on 127.0.0.1). */
async function login (url: URL, localAddress: string, agent: http.Agent | false, username: string, password: string): Promise<Answer> {
  return await request(url, localAddress, agent, 'POST', '/auth/login', JSON.stringify({ username, password }))
}

async function request (url: URL, localAddress: string, agent: http.Agent | false, method: string, path: string, payload = ''): Promise<Answer> {
  const headers = payload === '' ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, agent, localAddress, timeout: ANSWER_WITHIN_MS, headers }, res => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }) })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${path}: no answer within ${ANSWER_WITHIN_MS} ms`)) })
    req.on('error', reject)
    req.end(payload)
  })
}

/** What the flood's requests got back. */
class Tally {
  answered = 0
  checked = 0
  refused = 0
  /** Anything else: for the GET /healthz flood, its 200s. */
  other = 0
  add (answer: Answer): void {
    this.answered++
    if (answer.status === 401) this.checked++
    else if (answer.status === 429) this.refused++
    else this.other++
  }
}

async function measure (): Promise<void> {
  const flood = intOption(values.flood, 'flood', 1000)
  const logins = intOption(values.logins, 'logins', 5)
  const dataDir = await tempDir('dw-login-storm-')
  let child: ChildProcess | undefined
  const flooder = new http.Agent({ keepAlive: true, maxSockets: flood, maxFreeSockets: flood })
  try {
    await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'] })
    if (values['checks-at-once'] !== undefined) {
      const config = await readConfig(dataDir)
      await writeConfig(dataDir, { ...config, login: { ...config.login, checksAtOnce: intOption(values['checks-at-once'], 'checks-at-once', 1) } })
    }
    child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--serve', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] })
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const url = new URL(await withTimeout(new Promise<string>(resolve => lines.once('line', resolve)), 60_000, 'the node to start'))
    const real = async (): Promise<Answer> => await login(url, '127.0.0.2', false, 'admin', ADMIN_PASSWORD)
    const realOk = (answer: Answer): number => {
      if (answer.status !== 200) throw new Error(`the real login answered ${answer.status}`)
      return answer.ms
    }

    progress('alone')
    const alone: number[] = []
    for (let i = 0; i < logins; i++) alone.push(realOk(await real()))

    progress(`opening ${flood} flood connections from 127.0.0.1`)
    for (let opened = 0; opened < flood; opened += 200) {
      await Promise.all(Array.from({ length: Math.min(200, flood - opened) }, async () => await request(url, '127.0.0.1', flooder, 'GET', '/healthz')))
    }

    progress('burst')
    const burst: number[] = []
    const burstTally = new Tally()
    let guess = 0
    const badLogin = async (): Promise<Answer> => await login(url, '127.0.0.1', flooder, `intruder-${guess++}`, 'a guess')
    for (let i = 0; i < logins; i++) {
      const answers = Array.from({ length: flood }, badLogin)
      burst.push(realOk(await real()))
      for (const answer of await Promise.all(answers)) burstTally.add(answer)
    }

    /** Real logins one by one while `send` is kept `flood` times in flight. */
    const underSustained = async (send: () => Promise<Answer>, tally: Tally): Promise<number[]> => {
      const samples: number[] = []
      let stop = false
      const workers = Array.from({ length: flood }, async () => { while (!stop) tally.add(await send()) })
      try {
        for (let i = 0; i < logins; i++) samples.push(realOk(await real()))
      } finally {
        stop = true
        await Promise.all(workers)
      }
      return samples
    }
    progress('sustained')
    const sustainedTally = new Tally()
    const sustained = await underSustained(badLogin, sustainedTally)
    progress('sustained, GET /healthz')
    const healthTally = new Tally()
    const health = await underSustained(async () => await request(url, '127.0.0.1', flooder, 'GET', '/healthz'), healthTally)

    const row = (name: string, samples: number[], tally?: Tally): string[] => {
      const s = summarize(samples)
      return [name, String(s.n), ms(s.min, 0), ms(s.p50, 0), ms(s.max, 0),
        tally === undefined ? '-' : count(tally.answered), tally === undefined ? '-' : count(tally.checked), tally === undefined ? '-' : count(tally.refused), tally === undefined ? '-' : count(tally.other)]
    }
    console.log(`Real login (admin from 127.0.0.2) while 127.0.0.1 floods POST /auth/login with ${count(flood)} bad logins`)
    console.log(machineLine())
    console.log()
    console.log(table(
      ['scenario', 'real logins', 'min', 'median', 'max', 'flood answered', 'checked (401)', 'refused (429)', 'other'],
      [
        row('alone', alone),
        row(`burst of ${count(flood)}`, burst, burstTally),
        row(`${count(flood)} kept in flight`, sustained, sustainedTally),
        row(`${count(flood)} GET /healthz kept in flight`, health, healthTally)
      ]
    ))
  } finally {
    flooder.destroy()
    if (child?.exitCode === null) {
      const exited = new Promise(resolve => child?.once('exit', resolve))
      child.kill('SIGTERM')
      await withTimeout(exited, 30_000, 'the node to stop').catch(() => child?.kill('SIGKILL'))
    }
    await removeDir(dataDir)
  }
}

if (values.serve !== undefined) await serve(values.serve)
else await measure()
