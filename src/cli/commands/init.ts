import type { Command } from 'commander'
import { PASSWORD_COST_RANGE, validatePasswordPolicy } from '../../auth/passwords.ts'
import type { NodeConfig } from '../../config.ts'
import { S3_ENV, s3BlobsConfigFromEnv } from '../../blobs/s3-config.ts'
import { DwError } from '../../errors.ts'
import { refuseInitialised } from '../../start/data-dir.ts'
import { parseHostPort, usesNodeOptions, validateListenAddr } from '../node-options.ts'
import { asOption, asRepeatedOption, command, type DataOptions } from '../options.ts'
import { fields, json } from '../output.ts'
import { generatePassword, readPassword } from '../prompt.ts'

interface InitOptions extends DataOptions {
  name?: string
  http?: { host: string, port: number }
  listen?: string[]
  generatePassword?: boolean
  json?: boolean
  blobs?: string
  s3Endpoint?: string
  s3Bucket?: string
  s3Prefix?: string
  s3Region?: string
  join?: boolean
  passwordCost?: number
}

/**
 * Settings not given as flags come from the environment (DW_NAME, DW_HTTP,
 * DW_LISTEN, DW_BLOBS and DW_S3_*), which is how a container is configured.
 */
function withEnvironment (options: InitOptions): { name?: string, http?: { host: string, port: number }, listen?: string[], blobs?: NodeConfig['blobs'], login?: NodeConfig['login'] } {
  const env = process.env
  const listen = options.listen ?? env.DW_LISTEN?.split(',').map(a => validateListenAddr(a)).filter(a => a !== '')
  const s3 = s3BlobsConfigFromEnv({
    ...env,
    [S3_ENV.blobs]: options.blobs ?? (options.s3Endpoint !== undefined ? 's3' : env[S3_ENV.blobs]),
    [S3_ENV.endpoint]: options.s3Endpoint ?? env[S3_ENV.endpoint],
    [S3_ENV.bucket]: options.s3Bucket ?? env[S3_ENV.bucket],
    [S3_ENV.prefix]: options.s3Prefix ?? env[S3_ENV.prefix],
    [S3_ENV.region]: options.s3Region ?? env[S3_ENV.region]
  })
  const out: ReturnType<typeof withEnvironment> = {}
  const name = options.name ?? env.DW_NAME
  if (name !== undefined && name !== '') out.name = name
  const http = options.http ?? (env.DW_HTTP !== undefined && env.DW_HTTP !== '' ? parseHostPort(env.DW_HTTP) : undefined)
  if (http !== undefined) out.http = http
  if (listen !== undefined && listen.length > 0) out.listen = listen
  if (s3 !== undefined) out.blobs = s3
  const cost = options.passwordCost ?? (env.DW_PASSWORD_COST !== undefined && env.DW_PASSWORD_COST !== '' ? passwordCost(env.DW_PASSWORD_COST) : undefined)
  if (cost !== undefined) out.login = { passwordCost: cost }
  return out
}

function passwordCost (value: string): number {
  const cost = Number(value)
  if (!Number.isSafeInteger(cost) || cost < PASSWORD_COST_RANGE.min || cost > PASSWORD_COST_RANGE.max) {
    throw new DwError('INVALID_INPUT', `the password cost must be a whole number from ${PASSWORD_COST_RANGE.min} to ${PASSWORD_COST_RANGE.max}, not ${JSON.stringify(value)}`)
  }
  return cost
}

/** The admin password: generated (and shown once), from DW_ADMIN_PASSWORD, or asked for. */
async function adminPassword (generate: boolean): Promise<{ password: string, generated: boolean }> {
  if (generate) return { password: generatePassword(), generated: true }
  const password = await readPassword({ env: 'DW_ADMIN_PASSWORD', label: 'new admin password', confirm: true })
  return { password, generated: false }
}

/** Creates a node; checks the password first, because a refused password would leave a half-made data directory. */
export async function createNode (options: InitOptions, password: string): Promise<{ peerId: string, name: string, addresses: string[], http: string, meshId: string | null }> {
  try {
    validatePasswordPolicy(password)
  } catch (err) {
    throw new DwError('INVALID_INPUT', `the admin password is not accepted: ${(err as Error).message}`)
  }
  // Loaded on demand: the node stack is heavy and most commands only speak HTTP.
  const { initNode } = await import('../../node.ts')
  const made = await initNode({ dataDir: options.data, ...withEnvironment(options), adminPassword: password, join: options.join === true || process.env.DW_JOIN === '1' })
  const { host, port } = made.config.http
  return { peerId: made.peerId, name: made.config.name, addresses: made.addresses, http: `${host.includes(':') ? `[${host}]` : host}:${port}`, meshId: made.meshId ?? null }
}

export function printGeneratedPassword (password: string): void {
  process.stdout.write(
    '\nThe admin account "admin" has this generated password. It is shown only once: keep it now.\n\n' +
    `    ${password}\n\n`)
}

export function initCommand (): Command {
  return usesNodeOptions(command('init', 'create a node: identity, config, database, blob store and the admin account'))
    .option('--name <name>', 'a human name for this site')
    .option('--http <host:port>', 'where the HTTP API listens (port 0: any free port)', asOption(parseHostPort))
    .option('--listen <multiaddr>', 'a libp2p listen address (repeatable)', asRepeatedOption(validateListenAddr))
    .option('--blobs <store>', 'where file bytes live: fs (the data directory, default) or s3 (MinIO or any S3 service)')
    .option('--s3-endpoint <url>', 'the S3 server, e.g. http://127.0.0.1:9000 (credentials from DW_S3_ACCESS_KEY and DW_S3_SECRET_KEY)')
    .option('--s3-bucket <name>', 'the bucket (created if missing)')
    .option('--s3-prefix <prefix>', 'a key prefix inside the bucket, so several nodes can share one')
    .option('--s3-region <region>', 'the S3 region, if the server needs one')
    .option('--join', 'join an existing mesh instead of founding one: it takes the mesh of the first peer that syncs with it, and writes once a full node of that mesh adds it (DW_JOIN=1)')
    .option('--password-cost <n>', 'scrypt cost of passwords, log2 of N, 14-20 (default 17: 128 MiB and about a second of CPU a check on small hardware; 15 takes 32 MiB); config.json login.passwordCost, DW_PASSWORD_COST', asOption(passwordCost))
    .option('--generate-password', 'generate the admin password and print it once, instead of DW_ADMIN_PASSWORD or a prompt')
    .option('--json', 'print JSON')
    .action(async (options: InitOptions) => {
      // Before asking for a password: a directory that holds a node is refused anyway (initNode checks again).
      await refuseInitialised(options.data)
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
        ['admin user', 'admin'],
        ['mesh', node.meshId === null ? 'none yet: joins the mesh of its first peer (a full node there must add it)' : `${node.meshId} (founded here; this node is full)`]
      ])
      process.stdout.write('multiaddrs:\n' + node.addresses.map(a => `  ${a}\n`).join(''))
      // An admin copies these into other sites' peers: a wildcard is not an address they can dial.
      if (node.addresses.some(a => /^\/ip[46]\/(0\.0\.0\.0|::)\//.test(a))) {
        process.stdout.write('  (0.0.0.0 or :: means "listen on every interface": other sites dial this host\'s own IP or DNS name in its place, e.g. /ip4/198.51.100.20/tcp/4001/p2p/<peer id>)\n')
      }
      if (generated) printGeneratedPassword(password)
      process.stdout.write(`\nstart it with: dw start --data ${options.data}\n`)
    })
}
