import type { FramedStream } from '../framed-stream.ts'
import type { PeerEntry } from '../peer-book.ts'
import { OfferedHeads } from './offered-heads.ts'

/** One peer's sync state as `GET /peers` and `GET /sync/status` report it. */
export interface PeerSyncStatus {
  peerId: string
  name?: string
  addrs: string[]
  connected: boolean
  /** ISO time this node last had everything the peer had offered. */
  lastSyncAt?: string
  /** Changes in the peer's feed not yet applied here (their feed head minus our checkpoint). */
  behindPeer: number | null
  /** Changes in our feed the peer has not acknowledged (our feed head minus its checkpoint). */
  peerBehind: number | null
  bytesIn: number
  bytesOut: number
  recordsIn: number
  recordsOut: number
  lastError?: string
  /** Set while the peer is over a sync quota: why, and when it may sync again (absent: at its next session). */
  throttled?: { reason: string, until?: string }
}

/** What this node knows of one peer's sessions, in memory. */
export interface PeerState {
  connected: boolean
  pulling: boolean
  lastSyncAt?: number
  remoteHead?: number
  ourCheckpoint?: number
  /** Their acknowledged position in our feed. */
  theirAck?: number
  bytesIn: number
  bytesOut: number
  recordsIn: number
  recordsOut: number
  lastError?: string
  ackWaiters: Array<() => void>
  /** What the peer offered us in this connection: not offered back to it. */
  offered: OfferedHeads
}

/** Per-peer sync state, and the status report made from it. */
export class PeerStates {
  readonly #peers = new Map<string, PeerState>()

  /** The peer's state, made on first use. */
  get (peerId: string): PeerState {
    let s = this.#peers.get(peerId)
    if (s === undefined) {
      s = { connected: false, pulling: false, bytesIn: 0, bytesOut: 0, recordsIn: 0, recordsOut: 0, ackWaiters: [], offered: new OfferedHeads() }
      this.#peers.set(peerId, s)
    }
    return s
  }

  find (peerId: string): PeerState | undefined {
    return this.#peers.get(peerId)
  }

  forget (peerId: string): void {
    this.#peers.delete(peerId)
  }

  /** Lag and counters per peer in the book; `seq` is this node's feed head. */
  status (entries: PeerEntry[], seq: number): PeerSyncStatus[] {
    return entries.map(entry => {
      const s = this.get(entry.peerId)
      const status: PeerSyncStatus = {
        peerId: entry.peerId,
        addrs: entry.addrs,
        connected: s.connected,
        behindPeer: s.remoteHead !== undefined && s.ourCheckpoint !== undefined ? Math.max(0, s.remoteHead - s.ourCheckpoint) : null,
        peerBehind: s.theirAck !== undefined ? Math.max(0, seq - s.theirAck) : null,
        bytesIn: s.bytesIn,
        bytesOut: s.bytesOut,
        recordsIn: s.recordsIn,
        recordsOut: s.recordsOut
      }
      if (entry.name !== undefined) status.name = entry.name
      const lastSync = s.lastSyncAt ?? entry.lastSyncAt
      if (lastSync !== undefined) status.lastSyncAt = new Date(lastSync).toISOString()
      if (s.lastError !== undefined) status.lastError = s.lastError
      return status
    })
  }
}

/** Adds the stream's byte counters to the peer's totals and resets them, so no byte is counted twice. */
export function moveByteCounts (framed: FramedStream, s: PeerState): void {
  s.bytesIn += framed.bytesReceived
  s.bytesOut += framed.bytesSent
  framed.bytesReceived = 0
  framed.bytesSent = 0
}
