import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { tempDir } from '../helpers/tmp.ts'

export const DW = fileURLToPath(new URL('../../bin/dw.ts', import.meta.url))
export const ADMIN_PASSWORD = 'field-site-admin-1'
/** scrypt cost of test nodes' passwords: the least dw accepts (login.passwordCost). */
export const TEST_PASSWORD_COST = 14

export interface Run { code: number | null, stdout: string, stderr: string }

type Teardown = { teardown: (fn: () => Promise<void> | void) => void }

/** Runs `dw` as a child process, bounded by `timeoutMs`; never inherits a terminal. */
export async function dw (args: string[], options: { env?: Record<string, string | undefined>, cwd?: string, timeoutMs?: number } = {}): Promise<Run> {
  // Passwords hashed at the least cost dw accepts (scrypt at 16 MiB): the
  // suite sets hundreds, and at the default each costs a second of CPU here.
  const env: Record<string, string | undefined> = { ...process.env, DW_ADMIN_PASSWORD: undefined, DW_USER_PASSWORD: undefined, DW_PASSWORD: undefined, DW_PASSWORD_COST: String(TEST_PASSWORD_COST), ...options.env }
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
  const child = spawn(process.execPath, [DW, ...args], { cwd: options.cwd, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** `dw ... --json`, parsed; fails loudly with the command's stderr. */
export async function dwJson<T = any> (args: string[], options: Parameters<typeof dw>[1] = {}): Promise<T> {
  const run = await dw([...args, '--json'], options)
  if (run.code !== 0) throw new Error(`dw ${args.join(' ')} exited ${run.code}: ${run.stderr}`)
  return JSON.parse(run.stdout) as T
}

/**
 * A fresh, initialised node directory with a random HTTP port. It founds a
 * mesh of its own, or with `join` waits to join the mesh of its first peer
 * (a full node there must add it with `dw peer add --role`; `rosterReached`
 * says when it has).
 */
export async function initialised (t: Teardown, name = 'site', options: { join?: boolean } = {}): Promise<string> {
  const data = join(await tempDir(t, 'dw-cli-'), 'data')
  const run = await dw(['init', '--data', data, '--name', name, '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0', ...(options.join === true ? ['--join'] : [])], { env: { DW_ADMIN_PASSWORD: ADMIN_PASSWORD } })
  if (run.code !== 0) throw new Error(`dw init failed: ${run.stderr}`)
  return data
}

export interface Started { child: ChildProcess, url: string, peerId: string, output: () => string, exited: Promise<number | null> }

/** Starts `dw start` and waits (bounded) for its "serving" line; stopped in teardown. */
export async function started (t: Teardown, data: string, timeoutMs = 60_000): Promise<Started> {
  return await startedWith(t, data, { timeoutMs })
}

/** Waits until the node holds a roster naming it (`dw node ls`: selfRole no longer 'unknown'); returns that role. */
export async function rosterReached (data: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const nodes = await dwJson(['node', 'ls', '--data', data]).catch(() => undefined)
    if (typeof nodes?.selfRole === 'string' && nodes.selfRole !== 'unknown') return nodes.selfRole
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`${data} did not receive a roster naming it within ${timeoutMs} ms`)
}

/**
 * Like `started`, with extra `dw start` arguments and environment, and
 * an https URL accepted in the "serving" line. Stopped in teardown.
 */
export async function startedWith (t: Teardown, data: string, options: { args?: string[], env?: Record<string, string | undefined>, timeoutMs?: number } = {}): Promise<Started & { stderr: () => string }> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env }
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
  const child = spawn(process.execPath, [DW, 'start', '--data', data, ...(options.args ?? [])], { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let stderr = ''
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  })
  const timeoutMs = options.timeoutMs ?? 60_000
  const serving = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dw start did not serve within ${timeoutMs} ms: ${output}`)), timeoutMs)
    const look = (s: string): void => {
      output += s
      const m = /serving (https?:\/\/\S+) as peer (\S+)/.exec(output)
      if (m !== null) {
        clearTimeout(timer)
        resolve(m)
      }
    }
    child.stdout.setEncoding('utf8').on('data', look)
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; look(s) })
    void exited.then(code => {
      clearTimeout(timer)
      reject(new Error(`dw start exited ${code}: ${output}`))
    })
  })
  return { child, url: serving[1] as string, peerId: serving[2] as string, output: () => output, stderr: () => stderr, exited }
}
