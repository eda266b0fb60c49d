import { access } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { CONFIG_FILE, readConfig } from '../../config.ts'
import { DwError } from '../../errors.ts'
import type { RunningNode } from '../../node.ts'
import { generatePassword } from '../prompt.ts'
import { command, type DataOptions } from '../options.ts'
import { createNode, printGeneratedPassword } from './init.ts'

interface StartOptions extends DataOptions { initIfMissing?: boolean }

const STOP_TIMEOUT_MS = 30_000

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

/** For `npm start`: a first run needs no separate init; a password not given is generated and shown once. */
async function initIfMissing (data: string): Promise<void> {
  if (await exists(join(data, CONFIG_FILE))) return
  const given = process.env.DW_ADMIN_PASSWORD
  const password = given !== undefined && given !== '' ? given : generatePassword()
  const node = await createNode({ data }, password)
  process.stdout.write(`initialised node ${node.name} in ${data}, peer id ${node.peerId}\n`)
  if (password !== given) printGeneratedPassword(password)
}

async function start (data: string): Promise<RunningNode> {
  const { startNode } = await import('../../node.ts')
  try {
    return await startNode({ dataDir: data, logger: { level: process.env.DW_LOG_LEVEL ?? 'warn' } })
  } catch (err: any) {
    if (err?.code !== 'EADDRINUSE') throw err
    const { http } = await readConfig(data)
    throw new DwError('CONFIG_INVALID', `cannot serve HTTP on ${http.host}:${http.port}: the port is in use; stop that program or change "http" in ${join(data, CONFIG_FILE)}`, { cause: err })
  }
}

/** Resolves on the first SIGINT or SIGTERM; a second one ends the process at once. */
async function untilSignal (): Promise<string> {
  return await new Promise(resolve => {
    const first = (signal: string): void => {
      process.on('SIGINT', () => process.exit(130))
      process.on('SIGTERM', () => process.exit(143))
      resolve(signal)
    }
    process.once('SIGINT', first)
    process.once('SIGTERM', first)
  })
}

export function startCommand (): Command {
  return command('start', 'run the node in the foreground until SIGINT (Ctrl-C) or SIGTERM')
    .option('--init-if-missing', 'create the node first if --data holds none (admin password from DW_ADMIN_PASSWORD, else generated and printed once)')
    .action(async (options: StartOptions) => {
      if (options.initIfMissing === true) await initIfMissing(options.data)
      const stopped = untilSignal()
      const node = await start(options.data)
      process.stdout.write(`dw node "${node.config.name}" serving ${node.url} as peer ${node.peerId}\n`)
      const signal = await stopped
      process.stdout.write(`${signal}: stopping\n`)
      const timer = setTimeout(() => {
        process.stderr.write(`dw: the node did not stop within ${STOP_TIMEOUT_MS / 1000} s; exiting anyway\n`)
        process.exit(1)
      }, STOP_TIMEOUT_MS)
      timer.unref()
      await node.stop()
      clearTimeout(timer)
      process.exit(0)
    })
}
