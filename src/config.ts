import { readFile, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { DwError } from './errors.ts'
import type { DocLimits } from './crdt/doc-limits.ts'
import type { QuotaLimits } from './peer/sync/quota.ts'
import type { LoginLimits } from './auth/login-guard.ts'
import { parseS3BlobsConfig, type S3BlobsConfig } from './blobs/s3-config.ts'
import type { BackupConfig } from './backup/schedule.ts'
import type { FleetConfig } from './fleet/thresholds.ts'
import type { MetricsConfig } from './metrics/config.ts'
import type { ConfigPeer } from './start/config-peers.ts'

/** Everything a node reads at start, kept as `config.json` in its data directory. */
export interface NodeConfig {
  version: 1
  name: string
  /** The HTTP API; with `tls`, it serves HTTPS only. */
  http: { host: string, port: number, tls?: TlsFiles }
  /** libp2p listen multiaddrs. */
  listen: string[]
  /**
   * Addresses other sites reach this node at, announced instead of the
   * listen addresses (a NAT's public address, a port forward, a DNS name);
   * `dw start --announce` adds to them for one run.
   */
  announce?: string[]
  /**
   * Peers added to the peer book at start unless already there, as `dw peer
   * add` would (docs/operations.md, "Three sites from config files");
   * `DW_PEERS` adds more.
   */
  peers?: ConfigPeer[]
  /** Where file bytes live: the data directory, or an S3-compatible bucket (MinIO). */
  blobs: { type: 'fs' } | S3BlobsConfig
  /** Blob transfers: concurrent transfers per peer, optional receive cap in bytes/s. */
  transfers?: { perPeer?: number, bytesPerSecond?: number }
  /** Redial backoff for peers out of reach (milliseconds). */
  sync?: { minMs?: number, maxMs?: number }
  /** Login throttling and the password-check queue (src/auth/login-guard.ts); each setting has a default. */
  login?: LoginLimits
  /** Overrides of what peers may cost this node (docs/operations.md, "Limits"). */
  limits?: {
    documents?: Partial<DocLimits>
    sync?: { perSession?: Partial<QuotaLimits>, perHour?: Partial<QuotaLimits> }
  }
  /** Scheduled backups (docs/operations.md, "Backups"): `{"every": "24h", "keep": 7, "to": "/var/backups/dw"}`. */
  backup?: BackupConfig
  /** The account `dw` commands act as through the node token. */
  adminUserId: string
  /** Copies of files across the mesh (docs/files.md, "Copies"); each setting has a default. */
  files?: FilesConfig
  /** How often this node publishes its status, and the fleet view's thresholds (docs/operations.md, "Fleet view"). */
  fleet?: FleetConfig
  /** Who may read `GET /metrics` besides admins, and an address of its own (docs/operations.md, "Metrics"). */
  metrics?: MetricsConfig
}

/** This node's part in keeping enough copies of every file (the targets themselves are mesh-wide, in the roster). */
export interface FilesConfig {
  /** Fetch files of others that are below their copy target (default true). */
  copy?: boolean
  /** Free disk kept in reserve: the larger of these two (default 1 GiB, 5 %). */
  reserveBytes?: number
  reservePercent?: number
  /** How long a file may stay below target before every site that lacks it fetches it (default 600000 ms). */
  graceMs?: number
  /** Between passes over the records (default 60000 ms). */
  scanMs?: number
  /** At most one change a node's holdings document per this many ms (default 1000). */
  publishMs?: number
}

export const FILES_DEFAULTS: Required<FilesConfig> = { copy: true, reserveBytes: 1024 ** 3, reservePercent: 5, graceMs: 600_000, scanMs: 60_000, publishMs: 1000 }

/** The defaults with a config's `files` settings, each checked. */
export function resolveFilesConfig (files: FilesConfig | undefined): Required<FilesConfig> {
  const out = { ...FILES_DEFAULTS }
  for (const [name, value] of Object.entries(files ?? {})) {
    if (!(name in out)) throw new DwError('CONFIG_INVALID', `config.json: files.${name} is not a files setting (known: ${Object.keys(out).join(', ')})`)
    if (name === 'copy') {
      if (typeof value !== 'boolean') throw new DwError('CONFIG_INVALID', 'config.json: files.copy must be true or false')
    } else if (!Number.isSafeInteger(value) || (value as number) < 0 || (name === 'reservePercent' && (value as number) > 100) || ((name === 'scanMs' || name === 'publishMs') && (value as number) < 10)) {
      throw new DwError('CONFIG_INVALID', `config.json: files.${name} must be a whole number${name === 'reservePercent' ? ' from 0 to 100' : name.endsWith('Ms') ? ' of milliseconds' : ' of bytes'}, got ${JSON.stringify(value)}`)
    }
    ;(out as Record<string, unknown>)[name] = value
  }
  return out
}

/** PEM files for the HTTP API's TLS: the certificate (chain) and its private key. Relative paths are relative to the data directory. */
export interface TlsFiles { cert: string, key: string }

export const CONFIG_FILE = 'config.json'

export function parseHostPort (value: string): { host: string, port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(value.trim())
  const port = Number(m?.[2])
  if (m === null || m[1] === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new DwError('INVALID_INPUT', `--http wants HOST:PORT such as 127.0.0.1:8080, got "${value}"`)
  }
  return { host: m[1] as string, port }
}

export function validateListenAddr (value: string): string {
  const trimmed = value.trim()
  try {
    const ma = multiaddr(trimmed)
    if (!ma.getComponents().some(c => c.name === 'tcp')) throw new Error('not tcp')
    return ma.toString()
  } catch {
    throw new DwError('INVALID_INPUT', `--listen wants a TCP multiaddr such as /ip4/0.0.0.0/tcp/4001, got "${value}"`)
  }
}

export async function readConfig (dataDir: string): Promise<NodeConfig> {
  let text: string
  try {
    text = await readFile(join(dataDir, CONFIG_FILE), 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT') throw new DwError('CONFIG_INVALID', `${dataDir} is not a dw node: run "dw init --data ${dataDir}" first`)
    throw err
  }
  let config: NodeConfig
  try {
    config = JSON.parse(text)
  } catch (err) {
    // V8's message says where (line and column): a hand-edited file's missing comma is found at once.
    throw new DwError('CONFIG_INVALID', `${join(dataDir, CONFIG_FILE)} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  if (config.version !== 1 || typeof config.http?.port !== 'number' || !Array.isArray(config.listen)) {
    throw new DwError('CONFIG_INVALID', `${join(dataDir, CONFIG_FILE)} is missing required settings`)
  }
  const tls = config.http.tls as unknown
  if (tls !== undefined && (typeof tls !== 'object' || tls === null || typeof (tls as TlsFiles).cert !== 'string' || typeof (tls as TlsFiles).key !== 'string')) {
    throw new DwError('CONFIG_INVALID', `${join(dataDir, CONFIG_FILE)} "http.tls" must be {"cert": FILE, "key": FILE} (PEM files)`)
  }
  if (config.blobs?.type === 's3') config.blobs = parseS3BlobsConfig(config.blobs, `${join(dataDir, CONFIG_FILE)} "blobs"`)
  else if (config.blobs?.type !== 'fs') throw new DwError('CONFIG_INVALID', `${join(dataDir, CONFIG_FILE)} "blobs" must have type "fs" or "s3"`)
  return config
}

export async function writeConfig (dataDir: string, config: NodeConfig): Promise<void> {
  const path = join(dataDir, CONFIG_FILE)
  await writeFile(`${path}.tmp`, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 })
  await rename(`${path}.tmp`, path)
}
