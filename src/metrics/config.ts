import { DwError } from '../errors.ts'

/**
 * `metrics` in config.json (docs/operations.md, "Metrics"). Without it,
 * `GET /metrics` on the API answers admins only.
 */
export interface MetricsConfig {
  /**
   * A bearer token that may read `GET /metrics` on the API and nothing
   * else: Prometheus cannot sign in, and an admin's session token would
   * let it do everything an admin does.
   */
  token?: string
  /**
   * Also serve `/metrics` on this address, without authentication:
   * "HOST:PORT", or a port alone for 127.0.0.1. Port 0 takes any free port.
   */
  listen?: string | number
}

export interface MetricsSettings {
  token: string | undefined
  listen: { host: string, port: number } | undefined
}

/**
 * What the API's own bearer tokens look like (src/api/auth-hook.ts accepts
 * 16 to 128 of these characters); at least 32 here, since the token is
 * long-lived and never rotated by the node.
 */
const TOKEN = /^[A-Za-z0-9_-]{32,128}$/
const KNOWN = ['token', 'listen']

function invalid (message: string): DwError {
  return new DwError('CONFIG_INVALID', `config.json: ${message}`)
}

function parseListen (value: unknown): { host: string, port: number } {
  const wanted = 'metrics.listen must be "HOST:PORT" (such as "127.0.0.1:9464") or a port number'
  const text = typeof value === 'number' ? String(value) : value
  if (typeof text !== 'string') throw invalid(`${wanted}, got ${JSON.stringify(value)}`)
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(text.trim())
  const port = Number(m?.[2])
  if (m === null || m[1] === '' || port > 65535) throw invalid(`${wanted}, got ${JSON.stringify(value)}`)
  return { host: m[1] ?? '127.0.0.1', port }
}

/** The checked settings; a bad value stops the start with CONFIG_INVALID (never echoing the token). */
export function resolveMetricsConfig (config: unknown): MetricsSettings {
  if (config === undefined) return { token: undefined, listen: undefined }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw invalid('"metrics" must be an object: {"token": "...", "listen": "127.0.0.1:9464"}')
  }
  for (const name of Object.keys(config)) {
    if (!KNOWN.includes(name)) throw invalid(`metrics.${name} is not a metrics setting (known: ${KNOWN.join(', ')})`)
  }
  const { token, listen } = config as MetricsConfig
  if (token !== undefined && (typeof token !== 'string' || !TOKEN.test(token))) {
    throw invalid('metrics.token must be 32 to 128 characters of A-Z, a-z, 0-9, "_" and "-" (for example the output of "openssl rand -hex 32")')
  }
  return { token, listen: listen === undefined ? undefined : parseListen(listen) }
}
