import { access } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import type { TlsFiles } from '../../config.ts'
import { DwError } from '../../errors.ts'
import type { RunningNode } from '../../node.ts'
import { generatePassword } from '../prompt.ts'
import { parseAnnounceAddress, parseHostPort, usesNodeOptions } from '../node-options.ts'
import { asOption, asRepeatedOption, command, type DataOptions } from '../options.ts'
import { createNode, printGeneratedPassword } from './init.ts'

interface StartOptions extends DataOptions {
  initIfMissing?: boolean
  http?: { host: string, port: number }
  tlsCert?: string
  tlsKey?: string
  announce?: string[]
}

/**
 * Files the node creates are its owner's alone. LevelDB and the blob store
 * take no file mode of their own, so the process umask is what decides it;
 * the owner-only data directory (src/start/data-dir.ts) protects them even
 * where this is not set (a node started from code rather than `dw start`).
 */
const PRIVATE_UMASK = 0o077

const STOP_TIMEOUT_MS = 30_000

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

/** For `npm start`: a first run needs no separate init; a password not given is generated and shown once. */
async function initIfMissing (data: string, http: StartOptions['http']): Promise<void> {
  const { CONFIG_FILE } = await import('../../config.ts')
  if (await exists(join(data, CONFIG_FILE))) return
  const given = process.env.DW_ADMIN_PASSWORD
  const password = given !== undefined && given !== '' ? given : generatePassword()
  const node = await createNode({ data, http }, password)
  process.stdout.write(`initialised node ${node.name} in ${data}, peer id ${node.peerId}\n`)
  if (password !== given) printGeneratedPassword(password)
}

/**
 * The certificate and key from --tls-cert/--tls-key, else DW_TLS_CERT/DW_TLS_KEY
 * (paths from the working directory); none: config.json's `http.tls`, if any.
 */
function tlsFiles (options: StartOptions): TlsFiles | undefined {
  const fromFlags = options.tlsCert !== undefined || options.tlsKey !== undefined
  const nonEmpty = (value: string | undefined): string | undefined => value === '' ? undefined : value
  const cert = fromFlags ? options.tlsCert : nonEmpty(process.env.DW_TLS_CERT)
  const key = fromFlags ? options.tlsKey : nonEmpty(process.env.DW_TLS_KEY)
  if (cert === undefined && key === undefined) return undefined
  if (cert === undefined || key === undefined) {
    throw new DwError('INVALID_INPUT', `HTTPS needs both ${fromFlags ? '--tls-cert and --tls-key' : 'DW_TLS_CERT and DW_TLS_KEY'}`)
  }
  return { cert: resolve(cert), key: resolve(key) }
}

/** Exit status when the node cannot go on and its supervisor should restart it (EX_SOFTWARE). */
const EXIT_ENGINE_FAILED = 70

async function start (data: string, http: StartOptions['http'], tls: TlsFiles | undefined, announce: string[] | undefined, onEngineFailure: () => void): Promise<RunningNode> {
  const { startNode } = await import('../../node.ts')
  try {
    return await startNode({ dataDir: data, http, tls, ...(announce === undefined ? {} : { announce }), logger: { level: process.env.DW_LOG_LEVEL ?? 'warn' }, onEngineFailure })
  } catch (err: any) {
    if (err?.code !== 'EADDRINUSE') throw err
    const { CONFIG_FILE, readConfig } = await import('../../config.ts')
    const { host, port } = http ?? (await readConfig(data)).http
    throw new DwError('CONFIG_INVALID', `cannot serve HTTP on ${host}:${port}: the port is in use; stop that program or change "http" in ${join(data, CONFIG_FILE)}`, { cause: err })
  }
}

function isLoopback (address: string): boolean {
  const ip = address.replace(/^::ffff:/i, '')
  return isIP(ip) === 4 ? ip.startsWith('127.') : ip === '::1'
}

/** Where the API really listens (port 0 resolved); a warning on stderr when other hosts can reach it. */
function reportListening (node: RunningNode): void {
  const listening = node.api.addresses().map(a => typeof a === 'string' ? a : `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`)
  const exposed = node.api.addresses().some(a => typeof a !== 'string' && !isLoopback(a.address))
  if (!exposed) return
  const https = node.url.startsWith('https:')
  process.stderr.write(
    `dw: warning: the HTTP API listens on ${listening.join(', ')}, reachable from other hosts` +
    (https
      ? '\n'
      : '; it is plain HTTP, so passwords and tokens cross the network unencrypted: serve HTTPS (--tls-cert and --tls-key) or listen on 127.0.0.1\n'))
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
  return usesNodeOptions(command('start', 'run the node in the foreground until SIGINT (Ctrl-C) or SIGTERM'))
    .option('--init-if-missing', 'create the node first if --data holds none (admin password from DW_ADMIN_PASSWORD, else generated and printed once)')
    .option('--http <host:port>', 'where the HTTP API listens this time, instead of config.json\'s "http" (port 0: any free port)', asOption(parseHostPort))
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); with --tls-key (or DW_TLS_CERT and DW_TLS_KEY)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--announce <multiaddr>', 'an address other sites reach this node at, announced instead of the listen addresses (NAT, port forward); repeatable; adds to config.json\'s "announce" for this run', asRepeatedOption(a => parseAnnounceAddress(a)))
    .action(async (options: StartOptions) => {
      process.umask(PRIVATE_UMASK)
      const tls = tlsFiles(options)
      if (options.initIfMissing === true) await initIfMissing(options.data, options.http)
      const stopped = untilSignal()
      let running: RunningNode | undefined
      // A node whose Automerge engine failed would answer 500 to every
      // record request: stop (whatever is acknowledged is on disk) and exit
      // non-zero, so systemd or docker restarts it with a fresh engine.
      const onEngineFailure = (): void => {
        process.stderr.write(`dw: the Automerge engine in this process has failed; exiting with status ${EXIT_ENGINE_FAILED} so the supervisor restarts the node\n`)
        const timer = setTimeout(() => process.exit(EXIT_ENGINE_FAILED), STOP_TIMEOUT_MS)
        timer.unref()
        void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(EXIT_ENGINE_FAILED))
      }
      // DW_ANNOUNCE (separated by commas or whitespace) is how a container says it; flags add to it.
      const fromEnv = (process.env.DW_ANNOUNCE ?? '').split(/[\s,]+/).filter(a => a !== '')
      const announce = [...fromEnv, ...(options.announce ?? [])]
      const node = await start(options.data, options.http, tls, announce.length === 0 ? undefined : announce, onEngineFailure)
      running = node
      process.stdout.write(`dw node "${node.config.name}" serving ${node.url} as peer ${node.peerId}\n`)
      reportListening(node)
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
