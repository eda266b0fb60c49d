import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { api, sleep, type Target } from './client.ts'
import { FaultyProxy, type LinkFaults } from './tcp-proxy.ts'
import type { Prng } from './prng.ts'

/**
 * The `dw` entry point the nodes run. DW_SIM_BIN points it at another build
 * (a patched copy of the tree), to show the checker catching a broken node.
 */
export const DW = process.env.DW_SIM_BIN ?? fileURLToPath(new URL('../../bin/dw.ts', import.meta.url))
export const ADMIN_PASSWORD = 'simulator-admin-password'

export type NodeState = 'stopped' | 'running' | 'killed' | 'paused'

export interface SimNode {
  index: number
  name: string
  dataDir: string
  logPath: string
  /** Fixed libp2p port, chosen free before init, so a restart keeps it. */
  p2pPort: number
  peerId: string
  /** This node's bootstrap admin: local, never replicated, left out of comparisons. */
  adminUserId: string
  url: string
  token: string
  state: NodeState
  child: ChildProcess | undefined
  exited: Promise<void> | undefined
  starts: number
  /** Exits nobody asked for (crashes), with the log tail. */
  crashes: Array<{ at: number, code: number | null, signal: string | null, log: string }>
}

export interface ClusterOptions {
  nodes: number
  root: string
  rng: Prng
  log: (line: string) => void
  /** Redial backoff written to each config.json. */
  sync?: { minMs: number, maxMs: number }
}

/** Picks distinct free TCP ports on 127.0.0.1 (held open together, then released). */
async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => {
    const server = createServer()
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => { resolve() }) })
    return server
  }))
  const ports = servers.map(s => (s.address() as { port: number }).port)
  await Promise.all(servers.map(async s => { await new Promise<void>(resolve => s.close(() => { resolve() })) }))
  return ports
}

async function run (args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [DW, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

function tail (path: string, bytes = 4000): string {
  try {
    const text = readFileSync(path, 'utf8')
    return text.slice(-bytes)
  } catch {
    return ''
  }
}

/**
 * N real `dw start` processes, each with its own data directory, linked
 * in a full mesh through one fault-injecting proxy per directed link:
 * node i dials node j at proxy(i→j) with j's peer id.
 */
export class Cluster {
  readonly nodes: SimNode[] = []
  /** proxies[i][j]: the link node i uses to dial node j (undefined on the diagonal). */
  readonly proxies: Array<Array<FaultyProxy | undefined>> = []
  readonly #opts: ClusterOptions
  #closed = false

  constructor (opts: ClusterOptions) {
    this.#opts = opts
  }

  get size (): number { return this.nodes.length }

  target (i: number): Target {
    const n = this.nodes[i] as SimNode
    return { url: n.url, token: n.token }
  }

  isUp (i: number): boolean {
    return this.nodes[i]?.state === 'running'
  }

  /** `dw init` every node, set its redial backoff, start it, start the proxies and fill the peer books. */
  async setUp (): Promise<void> {
    const { nodes: n, root } = this.#opts
    const ports = await freePorts(n)
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const dataDir = join(root, `node-${i}`)
      const port = ports[i] as number
      const init = await run(['init', '--data', dataDir, '--name', `sim-${i}`, '--http', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--json'], { DW_ADMIN_PASSWORD: ADMIN_PASSWORD }, 60_000)
      if (init.code !== 0) throw new Error(`dw init node ${i} failed (${init.code}): ${init.stderr}`)
      const made = JSON.parse(init.stdout) as { peerId: string }
      const configPath = join(dataDir, 'config.json')
      const config = JSON.parse(await readFile(configPath, 'utf8'))
      config.sync = this.#opts.sync ?? { minMs: 200, maxMs: 2000 }
      await writeFile(configPath, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 })
      this.nodes[i] = {
        index: i,
        name: `sim-${i}`,
        dataDir,
        logPath: join(root, `node-${i}.log`),
        p2pPort: port,
        peerId: made.peerId,
        adminUserId: String(config.adminUserId),
        url: '',
        token: '',
        state: 'stopped',
        child: undefined,
        exited: undefined,
        starts: 0,
        crashes: []
      }
    }))
    for (let i = 0; i < n; i++) {
      const row: Array<FaultyProxy | undefined> = []
      for (let j = 0; j < n; j++) {
        row.push(i === j ? undefined : await FaultyProxy.start(`${i}->${j}`, (this.nodes[j] as SimNode).p2pPort, this.#opts.rng.fork(`proxy ${i}->${j}`)))
      }
      this.proxies.push(row)
    }
    await Promise.all(this.nodes.map(async node => { await this.start(node.index) }))
    for (const node of this.nodes) {
      for (const other of this.nodes) {
        if (other === node) continue
        const proxy = this.proxies[node.index]?.[other.index] as FaultyProxy
        const res = await api(this.target(node.index), 'POST', '/peers', { json: { multiaddr: `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${other.peerId}`, name: other.name } })
        if (res.outcome !== 'ok') throw new Error(`peer add on node ${node.index}: ${res.error}`)
      }
    }
  }

  /** Starts node i and waits (bounded) until its node-token.json names the new process and it answers /healthz. */
  async start (i: number, timeoutMs = 60_000): Promise<void> {
    const node = this.nodes[i] as SimNode
    if (this.#closed) throw new Error('cluster closed')
    if (node.state === 'running' || node.state === 'paused') return
    // A SIGKILLed node leaves its token file behind: never read a stale one.
    await rm(join(node.dataDir, 'node-token.json'), { force: true })
    const fd = openSync(node.logPath, 'a')
    const child = spawn(process.execPath, [DW, 'start', '--data', node.dataDir], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, DW_LOG_LEVEL: process.env.DW_LOG_LEVEL ?? 'warn' }
    })
    closeSync(fd)
    node.child = child
    node.starts += 1
    node.state = 'running'
    node.exited = new Promise<void>(resolve => {
      child.on('exit', (code, signal) => {
        if (node.child === child && node.state === 'running' && !this.#closed) {
          node.crashes.push({ at: Date.now(), code, signal, log: tail(node.logPath) })
          this.#opts.log(`node ${i} exited on its own (code ${code}, signal ${signal})`)
          node.state = 'killed'
        }
        resolve()
      })
    })
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (node.child !== child || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`node ${i} exited while starting: ${tail(node.logPath, 1500)}`)
      }
      try {
        const file = JSON.parse(await readFile(join(node.dataDir, 'node-token.json'), 'utf8')) as { url: string, token: string, pid: number }
        if (file.pid === child.pid) {
          node.url = file.url
          node.token = file.token
          const health = await api(this.target(i), 'GET', '/healthz', { timeoutMs: 2000 })
          if (health.outcome === 'ok') return
        }
      } catch {}
      await sleep(100)
    }
    throw new Error(`node ${i} did not start within ${timeoutMs} ms: ${tail(node.logPath, 1500)}`)
  }

  /** SIGKILL: no shutdown, whatever was in flight is cut. */
  async kill (i: number): Promise<void> {
    const node = this.nodes[i] as SimNode
    if (node.child === undefined || node.state === 'killed' || node.state === 'stopped') return
    node.state = 'killed'
    node.child.kill('SIGKILL')
    await Promise.race([node.exited, sleep(10_000)])
  }

  pause (i: number): void {
    const node = this.nodes[i] as SimNode
    if (node.state !== 'running' || node.child === undefined) return
    node.child.kill('SIGSTOP')
    node.state = 'paused'
  }

  resume (i: number): void {
    const node = this.nodes[i] as SimNode
    if (node.state !== 'paused' || node.child === undefined) return
    node.child.kill('SIGCONT')
    node.state = 'running'
  }

  /**
   * Which node pairs can reach each other; both directed proxies of a pair
   * that may not are cut (live connections destroyed, new ones refused).
   */
  setTopology (connected: (i: number, j: number) => boolean): void {
    for (let i = 0; i < this.size; i++) {
      for (let j = 0; j < this.size; j++) {
        const proxy = this.proxies[i]?.[j]
        if (proxy === undefined) continue
        if (connected(i, j) && connected(j, i)) proxy.heal()
        else if (!proxy.isCut) proxy.cut()
      }
    }
  }

  setLinkFaults (i: number, j: number, faults: LinkFaults): void {
    this.proxies[i]?.[j]?.setFaults(faults)
  }

  /** Every link whole, no link faults, every node resumed and restarted. */
  async healAll (): Promise<void> {
    this.setTopology(() => true)
    for (const row of this.proxies) for (const p of row) p?.clearFaults()
    for (const node of this.nodes) if (node.state === 'paused') this.resume(node.index)
    await Promise.all(this.nodes.filter(n => n.state === 'killed' || n.state === 'stopped').map(async n => { await this.start(n.index) }))
  }

  proxyStats (): { accepted: number, refused: number, dropped: number, bytes: number } {
    const total = { accepted: 0, refused: 0, dropped: 0, bytes: 0 }
    for (const row of this.proxies) {
      for (const p of row) {
        if (p === undefined) continue
        total.accepted += p.stats.accepted
        total.refused += p.stats.refused
        total.dropped += p.stats.dropped
        total.bytes += p.stats.bytes
      }
    }
    return total
  }

  /** Stops every node (SIGCONT, SIGTERM, then SIGKILL after a bound) and closes the proxies. */
  async close (): Promise<void> {
    this.#closed = true
    await Promise.all(this.nodes.map(async node => {
      const child = node.child
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
      try { child.kill('SIGCONT') } catch {}
      try { child.kill('SIGTERM') } catch {}
      const stopped = await Promise.race([node.exited?.then(() => true), sleep(8000).then(() => false)])
      if (stopped !== true) {
        try { child.kill('SIGKILL') } catch {}
        await Promise.race([node.exited, sleep(5000)])
      }
      node.state = 'stopped'
    }))
    await Promise.all(this.proxies.flat().map(async p => { await p?.close() }))
  }

  /** Last resort on process exit: synchronous, no waiting. */
  killAllNow (): void {
    this.#closed = true
    for (const node of this.nodes) {
      const child = node.child
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue
      try { child.kill('SIGCONT') } catch {}
      try { child.kill('SIGKILL') } catch {}
    }
  }
}
