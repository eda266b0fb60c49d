import { DwError } from '../errors.ts'

/**
 * A TOO_MANY_ATTEMPTS error, made without a stack trace. Refusals are what
 * a flood gets back, thousands a second, and capturing the stack (deep in
 * Fastify's hooks) was the largest single cost of refusing: nearly a tenth
 * of the node's busy time under 1,000 bad logins kept in flight. A
 * refusal's stack would say nothing anyway.
 */
export function refusal (message: string, details: { retryAfterSeconds: number } & Record<string, unknown>): DwError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new DwError('TOO_MANY_ATTEMPTS', message, { details })
  } finally {
    Error.stackTraceLimit = limit
  }
}
