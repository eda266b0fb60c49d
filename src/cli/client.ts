import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { NODE_TOKEN_FILE, type NodeTokenFile } from '../node.ts'
import { DwError } from '../errors.ts'

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
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>
  json?: unknown
  body?: AsyncIterable<Uint8Array>
  headers?: Record<string, string>
  /** Statuses answered with `undefined` instead of an error. */
  allow?: number[]
}

function notRunning (data: string): DwError {
  return new DwError('NODE_NOT_RUNNING', `the node at ${data} is not running; start it with: dw start --data ${data}`)
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

/** The HTTP API of one node, as the local admin (node token) or as a signed-in user. */
export class NodeClient {
  readonly #url: string
  readonly #data: string
  #token: string
  /** Set when signed in with a password, so users can change their own password. */
  readonly password: string | undefined

  private constructor (url: string, token: string, data: string, password?: string) {
    this.#url = url.replace(/\/+$/, '')
    this.#token = token
    this.#data = data
    this.password = password
  }

  get url (): string { return this.#url }

  static async connect (options: ConnectOptions): Promise<NodeClient> {
    if (options.user === undefined) {
      // The node token is the local node's admin key: never send it anywhere else.
      if (options.url !== undefined) throw new DwError('INVALID_INPUT', '--url needs --user: the node token is only for the local node')
      const local = await readNodeToken(options.data)
      if (local === undefined) throw notRunning(options.data)
      return new NodeClient(local.url, local.token, options.data)
    }
    const url = options.url ?? (await readNodeToken(options.data))?.url
    if (url === undefined) throw notRunning(options.data)
    const password = await (options.password ?? (async () => ''))()
    const client = new NodeClient(url, '', options.data, password)
    const session = await client.request<{ token: string }>('POST', '/auth/login', { json: { username: options.user, password } })
    client.#token = session.token
    return client
  }

  async request<T> (method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.fetch(method, path, options)
    if (response === undefined || response.status === 204) return undefined as T
    return await response.json() as T
  }

  /** The raw response for streaming; error statuses are already turned into an ApiError. */
  async fetch (method: string, path: string, options: RequestOptions = {}): Promise<Response | undefined> {
    const url = new URL(this.#url + path)
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value))
    }
    const headers: Record<string, string> = { ...options.headers }
    if (this.#token !== '') headers.authorization = `Bearer ${this.#token}`
    let body: string | AsyncIterable<Uint8Array> | undefined = options.body
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.json)
    }
    let response: Response
    try {
      response = await fetch(url, { method, headers, body, duplex: body === undefined || typeof body === 'string' ? undefined : 'half' })
    } catch (err: any) {
      const code = err?.cause?.code
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
        if (options.body !== undefined && code !== 'ECONNREFUSED') throw new DwError('NODE_NOT_RUNNING', `the connection to ${this.#url} broke during the upload`, { cause: err })
        throw notRunning(this.#data)
      }
      throw new DwError('NODE_NOT_RUNNING', `cannot reach the node at ${this.#url}: ${err?.cause?.message ?? err?.message}`, { cause: err })
    }
    if (response.ok) return response
    if (options.allow?.includes(response.status) === true) {
      await response.body?.cancel()
      return undefined
    }
    throw await apiError(response)
  }
}

async function apiError (response: Response): Promise<ApiError> {
  const text = await response.text()
  try {
    const body = JSON.parse(text) as { error?: { code?: string, message?: string } }
    if (typeof body.error?.message === 'string') return new ApiError(response.status, body.error.code ?? 'UNKNOWN', body.error.message)
  } catch {}
  return new ApiError(response.status, 'UNKNOWN', `the node answered ${response.status} ${response.statusText}${text === '' ? '' : `: ${text.slice(0, 200)}`}`)
}
