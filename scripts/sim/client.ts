import { createHash } from 'node:crypto'

/**
 * How a request ended, as far as the caller can know:
 * - ok: a 2xx answer (the write is acknowledged);
 * - rejected: the node answered with an error (4xx: refused, nothing written);
 * - refused: the connection was refused, so the node never saw the request;
 * - unknown: timeout, reset or a 5xx; the write may or may not have happened.
 */
export type Outcome = 'ok' | 'rejected' | 'refused' | 'unknown'

export interface ApiResult<T = any> {
  outcome: Outcome
  status: number
  body: T
  error?: string
  /** Milliseconds since the epoch when the request was sent and when its answer (or failure) came. */
  start: number
  end: number
}

export interface Target { url: string, token: string }

export interface RequestOptions {
  json?: unknown
  form?: FormData
  timeoutMs?: number
  signal?: AbortSignal
}

function classify (err: unknown): Outcome {
  const code = (err as { cause?: { code?: string } })?.cause?.code ?? (err as { code?: string })?.code
  // Nothing left this side: the node did not see the request.
  if (code === 'ECONNREFUSED') return 'refused'
  return 'unknown'
}

/** One bounded HTTP request to a node's API, with its node token. */
export async function api<T = any> (target: Target, method: string, path: string, options: RequestOptions = {}): Promise<ApiResult<T>> {
  const start = Date.now()
  const headers: Record<string, string> = { authorization: `Bearer ${target.token}` }
  let body: string | FormData | undefined
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.json)
  } else if (options.form !== undefined) {
    body = options.form
  }
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 15_000)
  const signal = options.signal !== undefined ? AbortSignal.any([timeout, options.signal]) : timeout
  try {
    const res = await fetch(`${target.url}${path}`, { method, headers, body, signal })
    const text = await res.text()
    let parsed: unknown = text
    if (text !== '' && (res.headers.get('content-type') ?? '').includes('json')) {
      try { parsed = JSON.parse(text) } catch {}
    }
    const outcome: Outcome = res.status < 300 ? 'ok' : res.status >= 500 && res.status !== 503 ? 'unknown' : 'rejected'
    const result: ApiResult<T> = { outcome, status: res.status, body: parsed as T, start, end: Date.now() }
    if (outcome !== 'ok') result.error = `${res.status} ${typeof parsed === 'object' && parsed !== null ? JSON.stringify(parsed).slice(0, 200) : String(parsed).slice(0, 200)}`
    return result
  } catch (err) {
    const e = err as Error & { cause?: Error }
    return { outcome: classify(err), status: 0, body: undefined as T, error: `${e.name}: ${e.cause?.message ?? e.message}`, start, end: Date.now() }
  }
}

/** Downloads a file and returns its status and sha256 (undefined unless 200). */
export async function download (target: Target, path: string, timeoutMs = 15_000): Promise<{ status: number, sha256?: string, size?: number, error?: string }> {
  try {
    const res = await fetch(`${target.url}${path}`, { headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(timeoutMs) })
    const bytes = Buffer.from(await res.arrayBuffer())
    if (res.status !== 200) return { status: res.status, error: bytes.toString('utf8').slice(0, 200) }
    return { status: 200, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length }
  } catch (err) {
    const e = err as Error & { cause?: Error }
    return { status: 0, error: `${e.name}: ${e.cause?.message ?? e.message}` }
  }
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}
