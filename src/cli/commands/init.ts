import type { Command } from 'commander'
import { validatePasswordPolicy } from '../../auth/passwords.ts'
import { parseHostPort, validateListenAddr } from '../../config.ts'
import { DwError } from '../../errors.ts'
import { asOption, asRepeatedOption, command, type DataOptions } from '../options.ts'
import { fields, json } from '../output.ts'
import { generatePassword, readPassword } from '../prompt.ts'

interface InitOptions extends DataOptions {
  name?: string
  http?: { host: string, port: number }
  listen?: string[]
  generatePassword?: boolean
  json?: boolean
}

/** The admin password: generated (and shown once), from DW_ADMIN_PASSWORD, or asked for. */
async function adminPassword (generate: boolean): Promise<{ password: string, generated: boolean }> {
  if (generate) return { password: generatePassword(), generated: true }
  const password = await readPassword({ env: 'DW_ADMIN_PASSWORD', label: 'new admin password', confirm: true })
  return { password, generated: false }
}

/** Creates a node; checks the password first, because a refused password would leave a half-made data directory. */
export async function createNode (options: InitOptions, password: string): Promise<{ peerId: string, name: string, addresses: string[], http: string }> {
  try {
    validatePasswordPolicy(password)
  } catch (err) {
    throw new DwError('INVALID_INPUT', `the admin password is not accepted: ${(err as Error).message}`)
  }
  // Loaded on demand: the node stack is heavy and most commands only speak HTTP.
  const { initNode } = await import('../../node.ts')
  const made = await initNode({ dataDir: options.data, name: options.name, http: options.http, listen: options.listen, adminPassword: password })
  const { host, port } = made.config.http
  return { peerId: made.peerId, name: made.config.name, addresses: made.addresses, http: `${host.includes(':') ? `[${host}]` : host}:${port}` }
}

export function printGeneratedPassword (password: string): void {
  process.stdout.write(
    '\nThe admin account "admin" has this generated password. It is shown only once: keep it now.\n\n' +
    `    ${password}\n\n`)
}

export function initCommand (): Command {
  return command('init', 'create a node: identity, config, database, blob store and the admin account')
    .option('--name <name>', 'a human name for this site')
    .option('--http <host:port>', 'where the HTTP API listens (port 0: any free port)', asOption(parseHostPort))
    .option('--listen <multiaddr>', 'a libp2p listen address (repeatable)', asRepeatedOption(validateListenAddr))
    .option('--generate-password', 'generate the admin password and print it once, instead of DW_ADMIN_PASSWORD or a prompt')
    .option('--json', 'print JSON')
    .action(async (options: InitOptions) => {
      const { password, generated } = await adminPassword(options.generatePassword === true)
      const node = await createNode(options, password)
      if (options.json === true) {
        json({ ...node, dataDir: options.data, adminUser: 'admin', ...(generated ? { adminPassword: password } : {}) })
        return
      }
      fields([
        ['node', node.name],
        ['data', options.data],
        ['peer id', node.peerId],
        ['http', node.http.endsWith(':0') ? `${node.http} (a free port is picked at start)` : node.http],
        ['admin user', 'admin']
      ])
      process.stdout.write('multiaddrs:\n' + node.addresses.map(a => `  ${a}\n`).join(''))
      if (generated) printGeneratedPassword(password)
      process.stdout.write(`\nstart it with: dw start --data ${options.data}\n`)
    })
}
