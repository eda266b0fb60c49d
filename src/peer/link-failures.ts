import type { Connection } from '@libp2p/interface'
import { DwError } from '../errors.ts'

/**
 * Why a peer could not be reached or would not talk, in words an admin can
 * act on. libp2p reports these as socket codes, `UnexpectedEOFError`, or
 * (when the remote closes mid-upgrade) a bare DOM `Event`, which printed as
 * `[object Event]`.
 *
 * A refusal has no message of its own on the wire: the remote's connection
 * gater admits or drops a peer right after the Noise handshake (the first
 * point it knows who is calling), so the caller sees an outbound connection
 * that opened and then closed within moments, before any stream got
 * through. That shape is what `refusedAfterHandshake` looks for.
 */

/** A connection closed by the far end sooner than this after opening, carrying no stream, was refused. */
export const REFUSAL_WINDOW_MS = 5_000

/** Socket codes that mean nothing answered at the address. */
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'connection refused: nothing listens there; is the node running?',
  EHOSTUNREACH: 'no route to the host',
  ENETUNREACH: 'no route to the network',
  EHOSTDOWN: 'the host is down',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve'
}

/** Errors seen when the far end closes the connection during or just after the handshake. */
const CLOSED_EARLY = new Set(['UnexpectedEOFError', 'StreamResetError', 'StreamStateError', 'ConnectionClosedError', 'MuxerUnavailableError', 'EncryptionFailedError'])

function errorCode (err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code in UNREACHABLE) return code
  }
  return undefined
}

function messageOf (err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0]?.slice(0, 200) ?? err.name
  return typeof err === 'string' ? err.slice(0, 200) : 'the connection closed'
}

/** Whether the error says the far end hung up early rather than never answering. */
export function closedEarly (err: unknown): boolean {
  if (!(err instanceof Error)) return true
  return CLOSED_EARLY.has(err.name) || errorCode(err) === undefined && /ECONNRESET|EPIPE/.test(String((err as { code?: unknown }).code ?? err.message))
}

/**
 * A failed dial to `addr`, as a DwError: PEER_UNREACHABLE when nothing
 * answered (refused, no route, timeout), PEER_REFUSED when something
 * answered and then hung up during the handshake.
 */
export function dialFailure (err: unknown, addr: string, signal?: AbortSignal): DwError {
  if (err instanceof DwError) return err
  const code = errorCode(err)
  if (code !== undefined) return new DwError('PEER_UNREACHABLE', `unreachable at ${addr} (${UNREACHABLE[code] as string})`, { cause: err, details: { addr, reason: code } })
  const name = err instanceof Error ? err.name : ''
  if (name === 'TimeoutError' || name === 'AbortError' || signal?.aborted === true) {
    return new DwError('PEER_UNREACHABLE', `unreachable at ${addr} (no answer in time: timed out)`, { cause: err, details: { addr, reason: 'timeout' } })
  }
  if (closedEarly(err)) {
    return new DwError('PEER_REFUSED', `refused: ${addr} closed the connection during the handshake; the peer does not trust this node (not approved yet, or removed)`, { cause: err, details: { addr, reason: 'closed-in-handshake' } })
  }
  return new DwError('PEER_UNREACHABLE', `unreachable at ${addr} (${messageOf(err)})`, { cause: err, details: { addr, reason: 'other' } })
}

/** What this node knows of the last connection to a peer that the peer cut short. */
export interface Refusal {
  /** The address the connection went to. */
  addr: string
  at: number
}

/** Whether a just-closed connection looks like the remote's gater turning this node away. */
export function refusedAfterHandshake (conn: Pick<Connection, 'direction' | 'timeline' | 'remoteAddr'>, streamsOpened: boolean): boolean {
  if (conn.direction !== 'outbound' || streamsOpened) return false
  const closedAt = conn.timeline.close ?? Date.now()
  return closedAt - conn.timeline.open < REFUSAL_WINDOW_MS
}

/**
 * The words for a refusal. A peer this node has synced with before has
 * stopped trusting it (removed it from its peer book, or revoked it); one it
 * never synced with has not approved it yet.
 */
export function refusalMessage (refusal: Refusal, selfPeerId: string, syncedBefore: boolean): string {
  if (syncedBefore) {
    return `refused: ${refusal.addr} closed our connection right after the handshake; the peer no longer trusts this node (it removed it from its peer book, or revoked it)`
  }
  return `refused: ${refusal.addr} closed our connection right after the handshake; the peer has not approved this node yet (on that node: dw peer pending, then dw peer approve ${selfPeerId})`
}
