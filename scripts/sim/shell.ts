import { spawn, spawnSync } from 'node:child_process'

/**
 * Runs one host command (ip, tc, nft) without a shell, feeding `input` on
 * stdin; resolves with stdout, rejects with the command and its stderr.
 * Bounded: a command that hangs is killed.
 */
export async function sh (command: string, args: string[], options: { input?: string, timeoutMs?: number } = {}): Promise<string> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  child.stdin.on('error', () => {})
  child.stdin.end(options.input ?? '')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 20_000)
  const result = await new Promise<{ code: number | null, error?: Error }>(resolve => {
    child.once('error', error => { resolve({ code: null, error }) })
    child.once('close', code => { resolve({ code }) })
  })
  clearTimeout(timer)
  if (result.code !== 0) {
    const why = result.error?.message ?? (stderr.trim() || `exit ${result.code ?? 'on a signal'}`)
    throw new Error(`${[command, ...args].join(' ')}: ${why}`)
  }
  return stdout
}

/** Synchronous, best effort, for exit hooks: true when the command succeeded. */
export function shSync (command: string, args: string[]): boolean {
  const res = spawnSync(command, args, { stdio: 'ignore', timeout: 5000 })
  return res.status === 0
}
