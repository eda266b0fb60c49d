import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { tempDir } from './tmp.ts'

type T = Parameters<typeof tempDir>[0]

export interface Attacker {
  peerId: string
  addr: string
  /** Runs one op in the attacker process (see attacker-process.ts). */
  call: (op: string, fields?: Record<string, unknown>) => Promise<any>
  attack: (name: string, args?: Record<string, unknown>) => Promise<any>
}

/** Starts a hostile node in its own process; it is stopped at teardown. */
export async function startAttacker (t: T & { teardown: (fn: () => Promise<void> | void) => void }): Promise<Attacker> {
  const dataDir = await tempDir(t, 'dw-attacker-')
  const child: ChildProcess = fork(fileURLToPath(new URL('./attacker-process.ts', import.meta.url)), [dataDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const waiting = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('attacker did not start within 60 s')), 60_000)
    child.on('message', (msg: any) => {
      if (msg.ready === true) { clearTimeout(timer); resolve(); return }
      const w = waiting.get(msg.id)
      if (w === undefined) return
      waiting.delete(msg.id)
      if (msg.error !== undefined) w.reject(new Error(msg.error))
      else w.resolve(msg.result)
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`attacker exited with ${String(code)}`)) })
  })
  t.teardown(async () => {
    if (child.exitCode !== null) return
    child.kill('SIGKILL')
    await new Promise(resolve => child.once('exit', resolve))
  })
  await ready
  const call = async (op: string, fields: Record<string, unknown> = {}): Promise<any> => {
    const id = next++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`attacker op ${op} timed out`)) }, 60_000)
      waiting.set(id, { resolve: v => { clearTimeout(timer); resolve(v) }, reject: e => { clearTimeout(timer); reject(e) } })
      child.send({ id, op, ...fields })
    })
  }
  const info = await call('info')
  return { peerId: info.peerId, addr: info.addr, call, attack: async (name, args = {}) => await call('attack', { name, args }) }
}
