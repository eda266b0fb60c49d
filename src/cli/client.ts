import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { PeerCertificate, SecureContext } from 'node:tls'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { NodeTokenFile } from '../node.ts'
import { DwError, isDwError } from '../errors.ts'

/** An error answer from the node's HTTP API, carrying the API's code and message. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: number
  readonly code: string

  constructor (status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

export interface ConnectOptions {
  data: string
  /** Talk to this API instead of the one named in the data directory. */
  url?: string
  /** Sign in as this user instead of using the node token. */
  user?: string
  /** Resolves the password for `user` (env or prompt). */
  password?: () => Promise<string>
  /**
   * A PEM file of certificates to trust for HTTPS (a private CA, or a node's
   * self-signed certificate); default DW_TLS_CA.
   */
  tlsCa?: string
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>
  json?: unknown
  /** A streamed body; sent with backpressure, never buffered whole. */
  body?: AsyncIterable<Uint8Array>
  headers?: Record<string, string>
  /** Statuses answered with `undefined` instead of an error. */
  allow?: number[]
}

/**
 * Same value as NODE_TOKEN_FILE in src/node.ts (a test keeps them equal):
 * importing node.ts would load the whole node stack, ~0.4 s on every command.
 */
export const NODE_TOKEN_FILE = 'node-token.json'

/** Names the stopped node by its peer id too, which an admin adding it elsewhere needs (loaded only here: the libp2p key code would cost every command ~0.3 s). */
async function notRunning (data: string): Promise<DwError> {
  const { storedPeerId } = await import('../peer/identity.ts')
  const peerId = await storedPeerId(data)
  return new DwError('NODE_NOT_RUNNING', `the node at ${data}${peerId === undefined ? '' : ` (peer id ${peerId})`} is not running; start it with: dw start --data ${data}`)
}

async function readNodeToken (data: string): Promise<NodeTokenFile | undefined> {
  let text: string
  try {
    text = await readFile(join(data, NODE_TOKEN_FILE), 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT') return undefined
    throw err
  }
  const parsed = JSON.parse(text) as NodeTokenFile
  // A node killed without a clean stop leaves its token file behind.
  if (typeof parsed.pid === 'number' && !alive(parsed.pid)) return undefined
  return parsed
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err?.code === 'EPERM'
  }
}

async function readText (response: IncomingMessage): Promise<string> {
  let text = ''
  response.setEncoding('utf8')
  for await (const chunk of response) text += chunk as string
  return text
}

async function apiError (response: IncomingMessage): Promise<ApiError> {
  const status = response.statusCode ?? 0
  const text = await readText(response)
  try {
    const body = JSON.parse(text) as { error?: { code?: string, message?: string } }
    if (typeof body.error?.message === 'string') return new ApiError(status, body.error.code ?? 'UNKNOWN', body.error.message)
  } catch {}
  return new ApiError(status, 'UNKNOWN', `the node answered ${status} ${response.statusMessage ?? ''}${text === '' ? '' : `: ${text.slice(0, 200)}`}`)
}

/**
 * node:http, node:https and node:tls are taken with process.getBuiltinModule
 * when a request is made, not imported: Node's ESM wrapper of node:http reads
 * every export, and one of them loads undici, about 50 ms of CPU on every dw
 * command, even `dw --help`. HTTPS and TLS are loaded only for an https URL.
 */
function httpModule (https: boolean): typeof import('node:http') | typeof import('node:https') {
  return https ? process.getBuiltinModule('node:https') : process.getBuiltinModule('node:http')
}

/** TLS error codes that mean "the certificate is not trusted", as opposed to a broken connection. */
const UNTRUSTED_CERT = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/

interface TlsOptions { secureContext?: SecureContext, checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined }

/**
 * What HTTPS requests trust. With the certificate the local node recorded in
 * its node-token file, exactly that certificate: it need not name the host
 * the command dials (127.0.0.1 for a node on 0.0.0.0), since the handshake
 * proves the server holds its key. Certificates from `caFile` are trusted as
 * well; with neither, Node's usual CA store and host name check apply.
 */
async function tlsOptions (pinned: string | undefined, caFile: string | undefined): Promise<TlsOptions> {
  if (pinned === undefined && (caFile === undefined || caFile === '')) return {}
  const ca = pinned === undefined ? [] : [pinned]
  if (caFile !== undefined && caFile !== '') {
    try {
      ca.push(await readFile(caFile, 'utf8'))
    } catch (err: any) {
      throw new DwError('INVALID_INPUT', `cannot read the TLS CA file ${caFile} (DW_TLS_CA): ${err?.code ?? String(err)}`, { cause: err })
    }
  }
  const pin = pinned === undefined ? undefined : new X509Certificate(pinned).fingerprint256
  const { checkServerIdentity, createSecureContext } = process.getBuiltinModule('node:tls')
  return {
    // Partial chains: a pinned leaf or an intermediate given as CA is an anchor of its own.
    secureContext: createSecureContext({ ca, allowPartialTrustChain: true }),
    checkServerIdentity: (host: string, cert: PeerCertificate) => cert.fingerprint256 === pin ? undefined : checkServerIdentity(host, cert)
  }
}

/** The HTTP API of one node, as the local admin (node token) or as a signed-in user. */
export class NodeClient {
  readonly #url: string
  readonly #data: string
  readonly #tls: TlsOptions
  #token = ''
  /** Set when signed in with a password, so users can change their own password. */
  readonly password: string | undefined

  private constructor (url: string, data: string, tls: TlsOptions, password?: string) {
    this.#url = url.replace(/\/+$/, '')
    this.#data = data
    this.#tls = tls
    this.password = password
  }

  get url (): string { return this.#url }

  static async connect (options: ConnectOptions): Promise<NodeClient> {
    const caFile = options.tlsCa ?? process.env.DW_TLS_CA
    if (options.user === undefined) {
      // The node token is the local node's admin key: never send it anywhere else.
      if (options.url !== undefined) throw new DwError('INVALID_INPUT', '--url needs --user: the node token is only for the local node')
      const local = await readNodeToken(options.data)
      if (local === undefined) throw await notRunning(options.data)
      const client = new NodeClient(local.url, options.data, await tlsOptions(local.cert, caFile))
      client.#token = local.token
      return client
    }
    const local = options.url === undefined ? await readNodeToken(options.data) : undefined
    const url = options.url ?? local?.url
    if (url === undefined) throw await notRunning(options.data)
    const tls = await tlsOptions(local?.cert, caFile)
    const password = await (options.password ?? (async () => ''))()
    const client = new NodeClient(url, options.data, tls, password)
    const session = await client.request<{ token: string }>('POST', '/auth/login', { json: { username: options.user, password } })
    client.#token = session.token
    // Each command signs in afresh; signing out when it is done keeps sessions from piling up on the node.
    process.once('beforeExit', () => { client.request('POST', '/auth/logout').catch(() => {}) })
    return client
  }

  async request<T> (method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.stream(method, path, options)
    if (response === undefined) return undefined as T
    const text = await readText(response)
    return (text === '' ? undefined : JSON.parse(text)) as T
  }

  /** The response body as a stream; error statuses are already turned into an ApiError. */
  async stream (method: string, path: string, options: RequestOptions = {}): Promise<IncomingMessage | undefined> {
    const url = new URL(this.#url + path)
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value))
    }
    const headers: Record<string, string> = { ...options.headers }
    if (this.#token !== '') headers.authorization = `Bearer ${this.#token}`
    const text = options.json === undefined ? undefined : JSON.stringify(options.json)
    if (text !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(Buffer.byteLength(text))
    }
    const https = url.protocol === 'https:'
    const req = httpModule(https).request(url, https ? { method, headers, ...this.#tls } : { method, headers })
    const responded = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve)
      req.once('error', reject)
    })
    let uploadError: unknown
    if (options.body !== undefined) {
      // A node that refuses an upload answers before reading it all and closes: its answer wins over the broken pipe.
      pipeline(Readable.from(options.body), req).catch((err: unknown) => { uploadError = err })
    } else {
      req.end(text)
    }
    let response: IncomingMessage
    try {
      response = await responded
    } catch (err: any) {
      if (isDwError(uploadError)) throw uploadError
      if (err?.code === 'ECONNREFUSED') throw await notRunning(this.#data)
      if (url.protocol === 'https:' && UNTRUSTED_CERT.test(String(err?.code))) {
        throw new DwError('CONFIG_INVALID', `refused the node at ${this.#url}: its TLS certificate is not trusted (${err?.message ?? err?.code}); to trust a private CA or the node's own certificate, set DW_TLS_CA=FILE`, { cause: err })
      }
      throw new DwError('NODE_NOT_RUNNING', `lost the connection to the node at ${this.#url}: ${err?.message ?? String(err)}`, { cause: err })
    }
    const status = response.statusCode ?? 0
    if (status >= 200 && status < 300) return response
    if (options.allow?.includes(status) === true) {
      response.resume()
      return undefined
    }
    throw await apiError(response)
  }
}
