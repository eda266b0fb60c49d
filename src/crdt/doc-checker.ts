import { Worker } from 'node:worker_threads'
import type { Startable } from '../lifecycle.ts'
import { DEFAULT_DOC_LIMITS, type DocLimits } from './doc-limits.ts'
import type { PreparedDoc } from './prepared-states.ts'

/**
 * `quarantine`: the document broke a limit or the engine; keep it out for
 * good (and say so). Otherwise the bytes are merely undecodable: the peer
 * sent a bad message.
 */
export type CheckVerdict = { ok: true, prepared?: PreparedDoc } | { ok: false, reason: string, quarantine: boolean, fatal?: boolean }

/**
 * One document to check: what this node holds of it (if anything) and what
 * a peer sent. Asked to `prepare`, the worker also hands back the states
 * the changes make, so the node's thread need not load the document at
 * all. Signatures are verified in the node's thread: with prepared states
 * the worker is what a sync waits on (the node's thread idled 76% of an
 * initial sync), and verifying there took a fifth of the worker's time.
 */
export interface CheckItem {
  base?: Uint8Array
  bytes: Uint8Array
  /** Hand back the states the changes make, when they qualify (prepared-states.ts). */
  prepare?: boolean
}

export interface CheckJob { id: number, items: CheckItem[], limits: Pick<DocLimits, 'maxOps' | 'maxDepth'> }
export interface CheckReply { id: number, i: number, verdict: CheckVerdict }

/** How long a new worker may take to load the engine (generous: a busy machine is slow, not broken). */
const WORKER_START_MS = 60_000

/** How often memory is sampled while a document loads: a hostile load grows ~700 MB/s, so this overshoots by ~10 MB. */
const MEMORY_SAMPLE_MS = 10

/**
 * How long a worker waits for work before it goes: its Automerge wasm
 * memory only grows, and its heap and engine cost the node tens of MiB
 * it would keep between syncs. Starting a fresh one takes ~100-300 ms.
 */
const IDLE_MS = 3000

/**
 * How long a worker that has had only small jobs waits for work: a live
 * sync's pushes of a few changed records. A fresh worker costs the next
 * check 100-300 ms to start, and its first few hundred loads run ~1.5x
 * slower (the engine's JavaScript is not optimised yet): one edit after a
 * quiet spell of more than IDLE_MS took 115-143 ms (median) to show on a
 * peer, against 19-21 ms with the worker kept (`node scripts/bench-sync.ts
 * --sizes 1000 --writes 15 --write-gap-ms 5000`). Such a worker holds ~30 MiB.
 */
const LEAN_IDLE_MS = 60_000

/**
 * A job with more bytes than this (a catch-up batch, a burst of more than
 * a few dozen changed records, a large document) may have grown the
 * worker's memory, which never shrinks: that worker goes after the short
 * idle time, so a node at rest after a sync holds no more than before.
 */
const LEAN_JOB_BYTES = 64 * 1024

interface Spawned {
  thread: Worker
  ready: Promise<void>
  /** No job larger than LEAN_JOB_BYTES yet: kept for LEAN_IDLE_MS between jobs. */
  lean: boolean
}

/** Verdicts of a load stopped at the memory limit (retried once: see #run). */
const memoryTrips = new WeakSet<CheckVerdict>()

/**
 * One worker per process, however many nodes run in it (a test starts
 * dozens): jobs from every checker take turns on it, and it goes when the
 * last checker stops.
 */
const shared: { worker: Spawned | undefined, queue: Promise<unknown>, checkers: number, pending: number, idle: NodeJS.Timeout | undefined, idleMs: number | undefined } = { worker: undefined, queue: Promise.resolve(), checkers: 0, pending: 0, idle: undefined, idleMs: undefined }

/**
 * Loads documents that peers send in a worker thread before the node
 * touches them, so a document built to expand (twenty kilobytes that load
 * into gigabytes) or to trap the Automerge engine costs a worker, not the
 * node. A document that takes longer than `maxLoadMs`, or grows the
 * process's memory by more than `maxLoadMemoryBytes`, has its worker
 * terminated; a fresh worker takes the rest. One job at a time: a node has
 * few cores, and sync applies batches in order anyway.
 *
 * `check` before `start` (or after `stop`) throws: a stopped node loads nothing from peers.
 */
export class DocChecker implements Startable {
  readonly #limits: DocLimits
  readonly #idleMs: number
  readonly #leanIdleMs: number
  #jobs = 0
  #stopped = true
  /** Workers terminated or lost: a number the node's status shows. */
  restarts = 0

  /**
   * `idleMs`: how long the worker waits for work before it stops (a check
   * after that starts a fresh one); `leanIdleMs`: the same for a worker
   * that has had only small jobs (LEAN_IDLE_MS, or `idleMs` when only that
   * is given).
   */
  constructor (limits: DocLimits = DEFAULT_DOC_LIMITS, options: { idleMs?: number, leanIdleMs?: number } = {}) {
    this.#limits = limits
    this.#idleMs = options.idleMs ?? IDLE_MS
    this.#leanIdleMs = options.leanIdleMs ?? options.idleMs ?? LEAN_IDLE_MS
  }

  get limits (): DocLimits { return this.#limits }

  /** True while a worker is up (between checks it stops after `idleMs`, or `leanIdleMs`). */
  get running (): boolean { return shared.worker !== undefined }

  /** How long the idle worker will wait for work before it stops; undefined while it works, or when none is up. */
  get idleTimeout (): number | undefined { return shared.idle === undefined ? undefined : shared.idleMs }

  start (): void {
    if (!this.#stopped) return
    this.#stopped = false
    shared.checkers += 1
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    shared.checkers -= 1
    await shared.queue.catch(() => {})
    if (shared.checkers > 0) return
    clearTimeout(shared.idle)
    shared.idle = undefined
    const worker = shared.worker
    shared.worker = undefined
    await worker?.thread.terminate()
  }

  /** A verdict per item, in order. */
  async check (items: CheckItem[]): Promise<CheckVerdict[]> {
    if (items.length === 0) return []
    clearTimeout(shared.idle)
    shared.idle = undefined
    shared.pending += 1
    const run = shared.queue.then(async () => await this.#run(items))
    shared.queue = run.catch(() => {}).finally(() => {
      shared.pending -= 1
      if (shared.pending === 0 && shared.worker !== undefined) {
        shared.idleMs = shared.worker.lean ? this.#leanIdleMs : this.#idleMs
        shared.idle = setTimeout(stopIdle, shared.idleMs)
        shared.idle.unref()
      }
    })
    return await run
  }

  async #run (items: CheckItem[]): Promise<CheckVerdict[]> {
    const out: CheckVerdict[] = []
    let retried = -1
    while (out.length < items.length) {
      if (this.#stopped) throw new Error('the document checker has stopped')
      const got = await this.#attempt(items.slice(out.length))
      const at = out.length + got.length - 1
      const last = got.at(-1)
      // The memory limit is measured on the whole process, so the node's own
      // work can trip it once: the document is loaded again, first in a fresh
      // worker, and quarantined only if it trips the limit again.
      if (last !== undefined && memoryTrips.has(last) && retried !== at) {
        retried = at
        got.pop()
      }
      out.push(...got)
    }
    return out
  }

  #spawn (): Spawned {
    const thread = new Worker(new URL('./doc-check-worker.ts', import.meta.url), {
      // The JavaScript heap is bounded here; the engine's memory is watched from outside.
      resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32 }
    })
    // A checker waiting for work must not keep a process alive.
    thread.unref()
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { fail(new Error(`the document checker did not start within ${WORKER_START_MS} ms`)) }, WORKER_START_MS)
      const fail = (err: Error): void => {
        clearTimeout(timer)
        thread.off('message', onReady)
        void thread.terminate()
        reject(err)
      }
      const onReady = (msg: { ready?: boolean }): void => {
        if (msg.ready !== true) return
        clearTimeout(timer)
        thread.off('message', onReady)
        thread.off('error', fail)
        resolve()
      }
      thread.on('message', onReady)
      thread.once('error', fail)
    })
    return { thread, ready, lean: true }
  }

  /**
   * Verdicts for a prefix of `items`: all of them, or those up to the one
   * that cost the worker its life (whose verdict says so).
   */
  async #attempt (items: CheckItem[]): Promise<CheckVerdict[]> {
    const spawned = shared.worker ?? this.#spawn()
    shared.worker = spawned
    try {
      await spawned.ready
    } catch (err) {
      if (shared.worker === spawned) shared.worker = undefined
      throw err
    }
    const worker = spawned.thread
    if (items.reduce((n, item) => n + item.bytes.length + (item.base?.length ?? 0), 0) > LEAN_JOB_BYTES) spawned.lean = false
    const id = ++this.#jobs
    const { maxLoadMs, maxLoadMemoryBytes, maxOps, maxDepth } = this.#limits
    return await new Promise<CheckVerdict[]>((resolve) => {
      const got: CheckVerdict[] = []
      let baseline = process.memoryUsage.rss()
      let deadline: NodeJS.Timeout
      let done = false
      const finish = (): void => {
        done = true
        clearTimeout(deadline)
        clearInterval(sampler)
        worker.off('message', onMessage)
        worker.off('exit', onExit)
        worker.off('error', onError)
        resolve(got)
      }
      const lose = (reason: string, memory = false): void => {
        if (shared.worker === spawned) shared.worker = undefined
        this.restarts += 1
        void worker.terminate()
        const verdict: CheckVerdict = { ok: false, quarantine: true, reason }
        if (memory) memoryTrips.add(verdict)
        got.push(verdict)
        finish()
      }
      // The time limit counts the worker's own CPU time, not the clock's:
      // a node stopped (SIGSTOP, a suspended VM) or starved by a busy
      // machine mid-load would otherwise quarantine an honest document for
      // good (a partition simulation saw it after a 23 s SIGSTOP). The clock
      // only says when to look.
      let item = 0
      const arm = (): void => {
        clearTimeout(deadline)
        const armed = ++item
        // Undefined once the worker is gone (its exit is handled on its own).
        const cpu = async (): Promise<NodeJS.CpuUsage | undefined> => await worker.cpuUsage().catch(() => undefined)
        const start = cpu()
        const look = (wait: number): void => {
          deadline = setTimeout(() => {
            void (async () => {
              const [from, now] = await Promise.all([start, cpu()])
              if (done || armed !== item) return
              const usedMs = from === undefined || now === undefined ? maxLoadMs : (now.user + now.system - from.user - from.system) / 1000
              if (usedMs >= maxLoadMs) lose(`loading it took more than ${maxLoadMs} ms of CPU time`)
              else look(maxLoadMs - usedMs)
            })()
          }, wait)
        }
        look(maxLoadMs)
      }
      const sampler = setInterval(() => {
        const grown = process.memoryUsage.rss() - baseline
        if (grown > maxLoadMemoryBytes) lose(`loading it grew this node's memory by more than ${Math.round(maxLoadMemoryBytes / 1048576)} MiB`, true)
      }, MEMORY_SAMPLE_MS)
      const onMessage = (reply: CheckReply): void => {
        if (reply.id !== id) return
        got.push(reply.verdict)
        if (reply.verdict.ok === false && reply.verdict.fatal === true) {
          // The worker exits by itself after a trap.
          if (shared.worker === spawned) shared.worker = undefined
          this.restarts += 1
          finish()
          return
        }
        if (got.length === items.length) { finish(); return }
        baseline = process.memoryUsage.rss()
        arm()
      }
      const onExit = (code: number): void => { lose(`the checker stopped while loading it (exit code ${code})`) }
      const onError = (err: Error): void => { lose(`the checker failed while loading it (${err.message})`) }
      worker.on('message', onMessage)
      worker.on('exit', onExit)
      worker.on('error', onError)
      arm()
      const job: CheckJob = { id, items, limits: { maxOps, maxDepth } }
      worker.postMessage(job)
    })
  }
}

/** Stops the worker after `idleMs` without work: not a restart, nothing was lost. */
function stopIdle (): void {
  shared.idle = undefined
  if (shared.pending > 0) return
  const worker = shared.worker
  shared.worker = undefined
  void worker?.thread.terminate()
}
