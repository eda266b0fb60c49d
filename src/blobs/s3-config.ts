import { isIP } from 'node:net'
import { DwError } from '../errors.ts'
import type { S3BlobStoreOptions } from './s3-store.ts'

/**
 * The `blobs` section of config.json for a node whose blobs live in an S3
 * bucket (MinIO or any S3-compatible server):
 *
 * ```json
 * "blobs": { "type": "s3", "endPoint": "minio", "port": 9000, "useSSL": false, "bucket": "dw-site-a", "prefix": "" }
 * ```
 *
 * Credentials belong in the environment (DW_S3_ACCESS_KEY, DW_S3_SECRET_KEY),
 * not in config.json; `accessKey`/`secretKey` here are a fallback only.
 */
export interface S3BlobsConfig {
  type: 's3'
  /** Host name or IP address of the server: no scheme, no port. */
  endPoint: string
  /** Default 443 with useSSL, else 80. */
  port: number
  /** Default true. */
  useSSL: boolean
  bucket: string
  /** Key prefix inside the bucket, `""` or ending in `/` (normalised so). Default `""`. */
  prefix: string
  region?: string
  accessKey?: string
  secretKey?: string
}

/**
 * Environment variables for S3 blobs. DW_BLOBS picks the store at `dw init`
 * only (switching stores later would strand the blobs). DW_S3_* win over
 * config.json whenever the node opens an S3 store, so a container's
 * environment stays the source of truth.
 */
export const S3_ENV = {
  /** `fs` (default) or `s3`: the blob store `dw init` configures. */
  blobs: 'DW_BLOBS',
  /** The server as a URL, e.g. `http://minio:9000`; the scheme sets useSSL, the port defaults to 80/443. */
  endpoint: 'DW_S3_ENDPOINT',
  bucket: 'DW_S3_BUCKET',
  prefix: 'DW_S3_PREFIX',
  region: 'DW_S3_REGION',
  accessKey: 'DW_S3_ACCESS_KEY',
  secretKey: 'DW_S3_SECRET_KEY'
} as const

type Env = Record<string, string | undefined>

const KEYS = ['type', 'endPoint', 'port', 'useSSL', 'bucket', 'prefix', 'region', 'accessKey', 'secretKey'] as const
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/
const PREFIX_SEGMENT = /^[A-Za-z0-9._-]+$/
const REGION = /^[a-z0-9-]{1,64}$/
const MAX_PREFIX_LENGTH = 512

/**
 * Checks the `blobs` section of config.json for an S3 store and fills in
 * defaults. Throws DwError CONFIG_INVALID naming the setting at fault.
 * `where` names the section in messages, e.g. `/data/config.json "blobs"`.
 */
export function parseS3BlobsConfig (value: unknown, where = 'config.json "blobs"'): S3BlobsConfig {
  const bad = (message: string): DwError => new DwError('CONFIG_INVALID', `${where}: ${message}`)
  if (!isRecord(value)) throw bad('must be an object')
  const section = value
  if (section.type !== 's3') throw bad(`"type" must be "s3" for an S3 blob store, got ${JSON.stringify(section.type)}`)

  const unknown = Object.keys(section).filter((key) => !(KEYS as readonly string[]).includes(key))
  if (unknown.length > 0) {
    const hints = unknown.map((key) => {
      const meant = KEYS.find((known) => known.toLowerCase() === key.toLowerCase())
      return meant !== undefined ? `"${key}" (did you mean "${meant}"?)` : `"${key}"`
    })
    throw bad(`unknown setting ${hints.join(', ')}; known settings are ${KEYS.map((k) => `"${k}"`).join(', ')}`)
  }

  const useSSL = section.useSSL ?? true
  if (typeof useSSL !== 'boolean') throw bad(`"useSSL" must be true or false, got ${JSON.stringify(section.useSSL)}`)
  const config: S3BlobsConfig = {
    type: 's3',
    endPoint: checkEndPoint(section.endPoint, bad),
    port: checkPort(section.port ?? (useSSL ? 443 : 80), bad),
    useSSL,
    bucket: checkBucket(section.bucket, bad),
    prefix: normalisePrefix(section.prefix ?? '', bad)
  }
  if (section.region !== undefined) {
    if (typeof section.region !== 'string' || !REGION.test(section.region)) {
      throw bad(`"region" must be an S3 region name such as "us-east-1", got ${JSON.stringify(section.region)}`)
    }
    config.region = section.region
  }
  for (const key of ['accessKey', 'secretKey'] as const) {
    const secret = section[key]
    if (secret === undefined) continue
    // The value is a secret: never echoed into a message.
    if (typeof secret !== 'string' || secret === '') throw bad(`"${key}" must be a non-empty string when given`)
    config[key] = secret
  }
  return config
}

/**
 * What `S3BlobStore.open` needs, from config.json's `blobs` section (any
 * shape; it is validated here) with the DW_S3_* environment laid over it.
 * Credentials come from DW_S3_ACCESS_KEY / DW_S3_SECRET_KEY, else from
 * config.json; without either this throws CONFIG_INVALID.
 */
export function resolveS3BlobStoreOptions (section: unknown, env: Env = process.env, where?: string): S3BlobStoreOptions {
  const overlay = s3SettingsFromEnv(env)
  const config = parseS3BlobsConfig(isRecord(section) ? { ...section, ...overlay } : section, where)
  const accessKey = envValue(env, S3_ENV.accessKey) ?? config.accessKey
  const secretKey = envValue(env, S3_ENV.secretKey) ?? config.secretKey
  if (accessKey === undefined || secretKey === undefined) {
    const missing = [accessKey === undefined ? S3_ENV.accessKey : undefined, secretKey === undefined ? S3_ENV.secretKey : undefined].filter((name) => name !== undefined)
    throw new DwError('CONFIG_INVALID', `S3 credentials missing: set ${missing.join(' and ')} in the node's environment`)
  }
  const { endPoint, port, useSSL, bucket, prefix, region } = config
  return { endPoint, port, useSSL, bucket, prefix, accessKey, secretKey, ...(region !== undefined ? { region } : {}) }
}

/**
 * For `dw init`: the `blobs` section to write when DW_BLOBS=s3, built from
 * DW_S3_ENDPOINT, DW_S3_BUCKET and optional DW_S3_PREFIX / DW_S3_REGION.
 * It never contains credentials, which stay in the environment. Undefined
 * when DW_BLOBS is unset or `fs`.
 */
export function s3BlobsConfigFromEnv (env: Env = process.env): S3BlobsConfig | undefined {
  const kind = envValue(env, S3_ENV.blobs)
  if (kind === undefined || kind === 'fs') return undefined
  if (kind !== 's3') throw new DwError('CONFIG_INVALID', `${S3_ENV.blobs} must be "fs" or "s3", got "${kind}"`)
  const settings = s3SettingsFromEnv(env)
  for (const [name, key] of [[S3_ENV.endpoint, 'endPoint'], [S3_ENV.bucket, 'bucket']] as const) {
    if (settings[key] === undefined) throw new DwError('CONFIG_INVALID', `${S3_ENV.blobs}=s3 needs ${name} as well`)
  }
  return parseS3BlobsConfig({ type: 's3', ...settings }, 'the DW_S3_* environment')
}

/** The non-secret settings given as DW_S3_* variables, validated. */
function s3SettingsFromEnv (env: Env): Partial<S3BlobsConfig> {
  const settings: Partial<S3BlobsConfig> = {}
  const endpoint = envValue(env, S3_ENV.endpoint)
  if (endpoint !== undefined) Object.assign(settings, parseEndpointUrl(endpoint))
  const bad = (name: string) => (message: string): DwError => new DwError('CONFIG_INVALID', `${name}: ${message}`)
  const bucket = envValue(env, S3_ENV.bucket)
  if (bucket !== undefined) settings.bucket = checkBucket(bucket, bad(S3_ENV.bucket))
  const prefix = env[S3_ENV.prefix]
  // An empty DW_S3_PREFIX is meaningful: the bucket's root.
  if (prefix !== undefined) settings.prefix = normalisePrefix(prefix, bad(S3_ENV.prefix))
  const region = envValue(env, S3_ENV.region)
  if (region !== undefined) {
    if (!REGION.test(region)) throw bad(S3_ENV.region)(`must be an S3 region name such as "us-east-1", got "${region}"`)
    settings.region = region
  }
  return settings
}

/** `http://minio:9000` -> endPoint, port, useSSL. */
function parseEndpointUrl (value: string): Pick<S3BlobsConfig, 'endPoint' | 'port' | 'useSSL'> {
  const bad = (why: string): DwError =>
    new DwError('CONFIG_INVALID', `${S3_ENV.endpoint} must be a URL such as http://minio:9000 or https://s3.example.org, ${why}; got "${value}"`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw bad('with http:// or https://')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('with http:// or https://')
  if (url.username !== '' || url.password !== '') throw bad(`without credentials (use ${S3_ENV.accessKey} and ${S3_ENV.secretKey})`)
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') throw bad(`without a path (the bucket goes in ${S3_ENV.bucket})`)
  const useSSL = url.protocol === 'https:'
  const endPoint = url.hostname.replace(/^\[(.*)\]$/, '$1')
  return { endPoint, port: url.port === '' ? (useSSL ? 443 : 80) : Number(url.port), useSSL }
}

function checkEndPoint (value: unknown, bad: (message: string) => DwError): string {
  if (typeof value !== 'string' || value === '') throw bad('"endPoint" is required: the S3 server\'s host name or IP address, such as "minio" or "10.0.0.5"')
  if (value.includes('://')) throw bad(`"endPoint" is a host name, not a URL: put the port in "port" and http/https in "useSSL"; got "${value}"`)
  if (isIP(value) === 0 && !HOST_NAME.test(value)) {
    throw bad(`"endPoint" must be a host name or IP address without port or path, such as "minio" or "10.0.0.5"; got "${value}"`)
  }
  return value
}

function checkPort (value: unknown, bad: (message: string) => DwError): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw bad(`"port" must be a whole number from 1 to 65535, got ${JSON.stringify(value)}`)
  }
  return value
}

function checkBucket (value: unknown, bad: (message: string) => DwError): string {
  const rules = '3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit'
  if (typeof value !== 'string' || value === '') throw bad(`"bucket" is required: ${rules}`)
  if (!BUCKET.test(value) || value.includes('..') || isIP(value) !== 0) throw bad(`"bucket" must be ${rules}, got "${value}"`)
  return value
}

/** `""` stays `""`; `site-a` and `/site-a/` become `site-a/`. */
function normalisePrefix (value: unknown, bad: (message: string) => DwError): string {
  if (typeof value !== 'string') throw bad(`"prefix" must be a string, got ${JSON.stringify(value)}`)
  const trimmed = value.replace(/^\/+|\/+$/g, '')
  if (trimmed === '') return ''
  const segments = trimmed.split('/')
  if (trimmed.length > MAX_PREFIX_LENGTH || segments.some((s) => !PREFIX_SEGMENT.test(s) || s === '.' || s === '..')) {
    throw bad(`"prefix" must be path segments of letters, digits, ".", "_" and "-" separated by "/" (at most ${MAX_PREFIX_LENGTH} characters), got "${value}"`)
  }
  return `${trimmed}/`
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function envValue (env: Env, name: string): string | undefined {
  const value = env[name]
  return value === undefined || value === '' ? undefined : value
}
