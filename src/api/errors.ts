import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { DwError, type ErrorCode } from '../errors.ts'

/** The one place error codes become HTTP statuses. */
const STATUS: Record<ErrorCode, number> = {
  INVALID_INPUT: 400,
  INVALID_MESSAGE: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PEER_NOT_ALLOWED: 403,
  PEER_REFUSED: 502,
  PEER_UNREACHABLE: 504,
  NOT_FOUND: 404,
  BLOB_NOT_FOUND: 404,
  CONFLICT: 409,
  ALREADY_INITIALISED: 409,
  RECORD_DELETED: 410,
  PAYLOAD_TOO_LARGE: 413,
  INTEGRITY_MISMATCH: 422,
  TOO_MANY_ATTEMPTS: 429,
  CONFIG_INVALID: 500,
  NODE_NOT_RUNNING: 503,
  BLOB_UNAVAILABLE: 503
}

export interface ErrorBody { error: { code: string, message: string, details?: Record<string, unknown> } }

function fromFastify (err: FastifyError): DwError | undefined {
  if (err.validation !== undefined) {
    const where = err.validationContext ?? 'request'
    const first = err.validation[0] as { instancePath?: string, message?: string, params?: Record<string, unknown> } | undefined
    const field = (first?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.')
    const extra = first?.params?.additionalProperty
    const what = typeof extra === 'string' ? `unknown field "${extra}"` : `${field === '' ? where : field} ${first?.message ?? 'is invalid'}`
    return new DwError('INVALID_INPUT', `invalid ${where}: ${what}`)
  }
  if (err.statusCode === 413 || err.code === 'FST_REQ_FILE_TOO_LARGE' || err.code === 'FST_FILES_LIMIT' || err.code === 'FST_PARTS_LIMIT') {
    return new DwError('PAYLOAD_TOO_LARGE', err.message)
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new DwError('INVALID_INPUT', `unsupported content type: ${err.message}`)
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return new DwError(err.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_INPUT', err.message)
  }
  return undefined
}

export function errorHandler (err: FastifyError | DwError, request: FastifyRequest, reply: FastifyReply): void {
  const dw = err instanceof DwError ? err : fromFastify(err as FastifyError)
  if (dw === undefined) {
    request.log.error({ err }, 'unexpected error')
    if (reply.sent || reply.raw.headersSent) { reply.raw.destroy(); return }
    for (const header of ['content-length', 'content-disposition', 'x-content-sha256']) reply.removeHeader(header)
    void reply.type('application/json; charset=utf-8')
    void reply.status(500).send({ error: { code: 'INTERNAL', message: 'internal error; the node log has details' } } satisfies ErrorBody)
    return
  }
  const status = STATUS[dw.code]
  if (reply.sent || reply.raw.headersSent) {
    // Mid-stream (a download whose source failed): all we can do is cut it short.
    reply.raw.destroy(dw)
    return
  }
  // A file route may have set its headers already; the error is JSON.
  for (const header of ['content-length', 'content-disposition', 'x-content-sha256']) reply.removeHeader(header)
  void reply.type('application/json; charset=utf-8')
  const retryAfter = dw.details?.retryAfterSeconds
  if (typeof retryAfter === 'number') void reply.header('retry-after', String(Math.ceil(retryAfter)))
  if (status >= 500) request.log.error({ err: dw }, dw.message)
  const body: ErrorBody = { error: { code: dw.code, message: dw.message } }
  if (dw.details !== undefined) body.error.details = dw.details
  void reply.status(status).send(body)
}

export function notFoundHandler (request: FastifyRequest, reply: FastifyReply): void {
  void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } } satisfies ErrorBody)
}
