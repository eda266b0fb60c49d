import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { api, sleep, type Target } from './client.ts'
import type { LinkFaults, Network, NetworkStats } from './network.ts'

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
  /** Fixed libp2p listen address, chosen before init, so a restart keeps it. */
  listen: string
  peerId: string
  /** This node's bootstrap admin: local, never replicated, left out of comparisons. */
  adminUserId: string
  url: string
  token: string
  state: NodeState
  child: ChildProcess | undefined
  exited: Promise<void> | undefined
  starts: number
  /** Taken out of the workload's rotation (a restore in progress): up and syncing, but sent no requests. */
  fenced: boolean
  /** Requests the workload has in flight to this node. */
  inflight: number
  /** Exits nobody asked for (crashes), with the log tail. */
  crashes: Array<{ at: number, code: number | null, signal: string | null, log: string }>
}

export interface ClusterOptions {
  nodes: number
  root: string
  /** What lies between the nodes: proxies on 127.0.0.1, or network namespaces. */
  network: Network
  log: (line: string) => void
  /** Redial backoff written to each config.json. */
  sync?: { minMs: number, maxMs: number }
}

/** The argv that runs `dw <args>` for a node, behind the network's prefix (which must exec, so the pid stays the node's). */
function dwCommand (prefix: string[], args: string[]): [string, string[]] {
  const [command = process.execPath, ...rest] = [...prefix, process.execPath, DW, ...args]
  return [command, rest]
}

async function run (prefix: string[], args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const [command, argv] = dwCommand(prefix, args)
  const child = spawn(command, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
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
 * N real `dw start` processes, each with its own data directory, in a full
 * mesh over a Network the nemesis can break: node i's peer book holds
 * `network.dialAddress(i, j)` with j's peer id.
 */
export class Cluster {
  readonly nodes: SimNode[] = []
  readonly network: Network
  readonly #opts: ClusterOptions
  #closed = false

  constructor (opts: ClusterOptions) {
    this.#opts = opts
    this.network = opts.network
  }

  get size (): number { return this.nodes.length }

  target (i: number): Target {
    const n = this.nodes[i] as SimNode
    return { url: n.url, token: n.token }
  }

  isUp (i: number): boolean {
    const node = this.nodes[i]
    return node?.state === 'running' && !node.fenced
  }

  /**
   * An online backup of node i (`dw backup`, as an admin takes one) into
   * `archive`; throws with dw's message when it fails.
   */
  async backup (i: number, archive: string, timeoutMs = 120_000): Promise<void> {
    const node = this.nodes[i] as SimNode
    const made = await run(this.network.commandPrefix(i), ['backup', '--to', archive, '--data', node.dataDir], {}, timeoutMs)
    if (made.code !== 0) throw new Error(`dw backup of node ${i} failed (${String(made.code)}): ${made.stderr.trim()}`)
  }

  /**
   * Replaces node i's data with `archive`, as an admin restores a site:
   * SIGKILL, the old directory moved aside, `dw restore` into its place,
   * and the node started again. Its peers see a new incarnation.
   */
  async restore (i: number, archive: string, timeoutMs = 120_000): Promise<void> {
    const node = this.nodes[i] as SimNode
    await this.kill(i)
    const aside = `${node.dataDir}.before-restore-${node.starts}`
    await rename(node.dataDir, aside)
    const restored = await run(this.network.commandPrefix(i), ['restore', '--from', archive, '--data', node.dataDir], {}, timeoutMs)
    if (restored.code !== 0) {
      await rm(node.dataDir, { recursive: true, force: true })
      await rename(aside, node.dataDir)
      await this.start(i)
      throw new Error(`dw restore of node ${i} failed (${String(restored.code)}): ${restored.stderr.trim()}`)
    }
    await this.start(i)
  }

  /**
   * Build the network, `dw init` every node, set its redial backoff, start it
   * and fill the peer books. Node 0 founds the mesh and the others join it:
   * node 0 adds each of them to the roster as a full node (the workload
   * creates accounts everywhere), and the set-up waits until every node
   * holds a roster that names it full.
   */
  async setUp (timeoutMs = 120_000): Promise<void> {
    await this.init()
    await Promise.all(this.nodes.map(async node => { await this.start(node.index) }))
    await this.peer(timeoutMs)
  }

  /** Builds the network and `dw init`s every node (node 0 founds the mesh, the others `--join`); starts none. */
  async init (): Promise<void> {
    const { nodes: n, root, network } = this.#opts
    await network.setUp(n)
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const dataDir = join(root, `node-${i}`)
      const listen = network.listenAddress(i)
      const joining = i === 0 ? [] : ['--join']
      // Passwords at the least cost dw accepts: what a run measures is sync, not scrypt.
      const init = await run(network.commandPrefix(i), ['init', '--data', dataDir, '--name', `sim-${i}`, '--http', network.httpAddress(i), '--listen', listen, '--json', '--password-cost', '14', ...joining], { DW_ADMIN_PASSWORD: ADMIN_PASSWORD }, 60_000)
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
        listen,
        peerId: made.peerId,
        adminUserId: String(config.adminUserId),
        url: '',
        token: '',
        state: 'stopped',
        child: undefined,
        exited: undefined,
        starts: 0,
        fenced: false,
        inflight: 0,
        crashes: []
      }
    }))
  }

  /**
   * Fills the peer books of running nodes and waits (bounded) until every
   * node holds a roster naming it full. `link`: the link profile each node
   * sets for every other (PATCH /peers/{peerId}).
   */
  async peer (timeoutMs = 120_000, link?: { maxRate?: number, metered?: boolean }): Promise<void> {
    const { nodes: n, network } = this.#opts
    // The founder first: its peer adds also enrol every other node as full.
    for (const node of this.nodes) {
      for (const other of this.nodes) {
        if (other === node) continue
        const multiaddr = `${network.dialAddress(node.index, other.index)}/p2p/${other.peerId}`
        const json = node.index === 0 ? { multiaddr, name: other.name, role: 'full' } : { multiaddr, name: other.name }
        const res = await api(this.target(node.index), 'POST', '/peers', { json })
        if (res.outcome !== 'ok') throw new Error(`peer add on node ${node.index}: ${res.error}`)
        // Right after the add, before the other side trusts this node back:
        // the first session it serves already reads the profile.
        if (link !== undefined) {
          const set = await api(this.target(node.index), 'PATCH', `/peers/${other.peerId}`, { json: link })
          if (set.outcome !== 'ok') throw new Error(`link profile on node ${node.index}: ${set.error}`)
        }
      }
    }
    const deadline = Date.now() + timeoutMs
    const roles = new Map<number, string>()
    for (const node of this.nodes) {
      while (true) {
        const res = await api<{ selfRole?: string }>(this.target(node.index), 'GET', '/nodes', { timeoutMs: 5000 })
        const role = res.outcome === 'ok' ? String(res.body.selfRole) : `(${res.error ?? 'no answer'})`
        roles.set(node.index, role)
        if (role === 'full') break
        if (Date.now() > deadline) {
          throw new Error(`nodes not all full in the mesh roster within ${timeoutMs} ms: ${[...roles].map(([i, r]) => `node ${i} ${r}`).join(', ')}`)
        }
        await sleep(200)
      }
    }
    this.#opts.log(`mesh formed: node 0 founded it, ${n - 1} joined as full nodes`)
  }

  /** Starts node i and waits (bounded) until its node-token.json names the new process and it answers /healthz. */
  async start (i: number, timeoutMs = 60_000): Promise<void> {
    const node = this.nodes[i] as SimNode
    if (this.#closed) throw new Error('cluster closed')
    if (node.state === 'running' || node.state === 'paused') return
    // A SIGKILLed node leaves its token file behind: never read a stale one.
    await rm(join(node.dataDir, 'node-token.json'), { force: true })
    const fd = openSync(node.logPath, 'a')
    const [command, argv] = dwCommand(this.network.commandPrefix(i), ['start', '--data', node.dataDir])
    const child = spawn(command, argv, {
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

  /** Which node pairs can reach each other; a pair is cut unless both directions are allowed. */
  async setTopology (connected: (i: number, j: number) => boolean): Promise<void> {
    await this.network.setTopology(connected)
  }

  async setLinkFaults (i: number, j: number, faults: LinkFaults): Promise<void> {
    await this.network.setLinkFaults(i, j, faults)
  }

  /** Every link whole, no link faults, every node resumed and restarted. */
  async healAll (): Promise<void> {
    await this.network.setTopology(() => true)
    await this.network.clearFaults()
    for (const node of this.nodes) if (node.state === 'paused') this.resume(node.index)
    await Promise.all(this.nodes.filter(n => n.state === 'killed' || n.state === 'stopped').map(async n => { await this.start(n.index) }))
  }

  async networkStats (): Promise<NetworkStats> {
    return await this.network.stats()
  }

  /** Stops every node (SIGCONT, SIGTERM, then SIGKILL after a bound), then takes the network down. */
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
    await this.network.close()
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
    this.network.destroyNow()
  }
}
