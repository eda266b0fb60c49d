/**
 * One error type for the whole node. The `code` is part of the API: tests,
 * HTTP status mapping (src/api/errors.ts) and wire codes match on it, never
 * on the message.
 */
export const ErrorCodes = {
  INVALID_INPUT: 'INVALID_INPUT',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  TOO_MANY_ATTEMPTS: 'TOO_MANY_ATTEMPTS',
  RECORD_DELETED: 'RECORD_DELETED',
  BLOB_NOT_FOUND: 'BLOB_NOT_FOUND',
  BLOB_UNAVAILABLE: 'BLOB_UNAVAILABLE',
  INTEGRITY_MISMATCH: 'INTEGRITY_MISMATCH',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  PEER_NOT_ALLOWED: 'PEER_NOT_ALLOWED',
  /** A peer turned this node away (its gater closed our connection after the handshake). */
  PEER_REFUSED: 'PEER_REFUSED',
  /** Nothing answered at a peer's address: connection refused, no route, timeout. */
  PEER_UNREACHABLE: 'PEER_UNREACHABLE',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  NODE_NOT_RUNNING: 'NODE_NOT_RUNNING',
  CONFIG_INVALID: 'CONFIG_INVALID',
  ALREADY_INITIALISED: 'ALREADY_INITIALISED'
} as const

export type ErrorCode = typeof ErrorCodes[keyof typeof ErrorCodes]

export class DwError extends Error {
  override readonly name = 'DwError'
  readonly code: ErrorCode
  /** Extra machine-readable facts (for example `retryAfterSeconds`). */
  readonly details: Record<string, unknown> | undefined

  constructor (code: ErrorCode, message: string, options: { cause?: unknown, details?: Record<string, unknown> } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.details = options.details
  }
}

export function isDwError (err: unknown, code?: ErrorCode): err is DwError {
  return err instanceof DwError && (code === undefined || err.code === code)
}
