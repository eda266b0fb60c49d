/**
 * Benchmark nodes in child processes, driven over IPC: the driver calls a
 * method of the child's agent by name and awaits its result. One node per
 * process keeps the driver's own work (clients, timers) off the node's thread.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { progress, withTimeout } from './bench-util.ts'

interface Command { id: number, cmd: string, args: unknown }
interface Reply { id: number, ok: boolean, result?: unknown, error?: string }

export interface AgentProcess {
  proc: ChildProcess
  /** Calls `cmd` on the child's agent; rejects if it fails, times out, or the child exits first. */
  call: <T>(cmd: string, args?: unknown, timeoutMs?: number) => Promise<T>
  /** Waits (bounded) for the child to exit, and kills it if it does not. */
  exited: () => Promise<void>
}

/** Forks `script` (which calls `serveAgent`) as agent `name`. */
export function forkAgent (script: string, name: string, defaultTimeoutMs: number): AgentProcess {
  const proc = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let nextId = 0
  const waiting = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  proc.on('message', (msg: Reply) => {
    const w = waiting.get(msg.id)
    waiting.delete(msg.id)
    if (msg.ok) w?.resolve(msg.result)
    else w?.reject(new Error(`${name}: ${msg.error ?? 'failed'}`))
  })
  // A send racing the child's exit fails here rather than crashing the run; the exit handler rejects the waiters.
  proc.on('error', (err) => { progress(`${name}: ${err.message}`) })
  proc.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`${name} exited (${String(code)})`))
    waiting.clear()
  })
  const call = async <T>(cmd: string, args?: unknown, timeoutMs = defaultTimeoutMs): Promise<T> => {
    if (!proc.connected) throw new Error(`${name} has exited`)
    const id = nextId++
    const reply = new Promise<T>((resolve, reject) => { waiting.set(id, { resolve, reject }) })
    proc.send({ id, cmd, args })
    return await withTimeout(reply, timeoutMs, `${name} ${cmd}`)
  }
  const exited = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exit = new Promise<void>(resolve => { proc.once('exit', () => { resolve() }) })
    await withTimeout(exit, 20_000, `${name} to exit`).catch(() => { proc.kill('SIGKILL') })
  }
  return { proc, call, exited }
}

/**
 * The child's side: runs each command the driver sends as a method of
 * `agent`. A `stop` command ends the process once answered; a driver that
 * goes away makes the agent stop cleanly first.
 */
export function serveAgent (agent: object): void {
  const methods = agent as Record<string, ((args: unknown) => unknown) | undefined>
  process.on('message', (msg: Command) => {
    void (async () => {
      try {
        const fn = methods[msg.cmd]
        if (typeof fn !== 'function') throw new Error(`unknown command ${msg.cmd}`)
        const result = await fn.call(agent, msg.args)
        process.send?.({ id: msg.id, ok: true, result })
        if (msg.cmd === 'stop') setTimeout(() => { process.exit(0) }, 50)
      } catch (err) {
        process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) })
      }
    })()
  })
  process.on('disconnect', () => {
    void (async () => {
      await Promise.resolve(methods.stop?.call(agent, undefined)).catch(() => {})
      process.exit(0)
    })()
  })
}
