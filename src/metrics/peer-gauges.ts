import { Counter, Gauge, type Registry } from 'prom-client'
import type { PeerSyncStatus } from '../peer/sync/peer-status.ts'

/** What the per-peer series are read from, at each scrape. */
export interface PeerSource {
  /** Every peer in the book with its sync state (SyncService.status). */
  status: () => PeerSyncStatus[]
  /** When the peer was added to the book, ms since the epoch. */
  addedAt: (peerId: string) => number | undefined
}

/**
 * Seconds since this node last held everything the peer had offered.
 *
 * A caught-up live session does not renew `lastSyncAt` while the peer has
 * nothing new, so the time since it alone would grow on a quiet, healthy
 * link. While the peer is connected, caught up (nothing of its feed left
 * to apply), not throttled and without an error since, the lag is 0;
 * otherwise it is the time since the last catch-up, or since the peer was
 * added for one that never synced. It grows while a peer is out of reach,
 * which is what an alert on it is for.
 */
export function lagSeconds (status: PeerSyncStatus, addedAt: number | undefined, now: number): number | undefined {
  if (status.connected && status.behindPeer === 0 && status.lastError === undefined && status.throttled === undefined) return 0
  const since = status.lastSyncAt !== undefined ? Date.parse(status.lastSyncAt) : addedAt
  return since === undefined || Number.isNaN(since) ? undefined : Math.max(0, (now - since) / 1000)
}

type SetSample<L extends string> = (labels: Partial<Record<L, string>>, value: number) => void
type Each<L extends string> = (status: PeerSyncStatus, set: SetSample<L>) => void

/** A gauge whose series are all set afresh from the source at each scrape: a peer removed from the book leaves no series behind. */
function peerGauge<L extends string> (registry: Registry, source: PeerSource, name: string, help: string, labelNames: L[], each: Each<L>): void {
  new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      this.reset()
      for (const status of source.status()) each(status, (labels, value) => { this.set(labels, value) })
    }
  })
}

/** The same for a total the source keeps itself (SyncService counts since the node started). */
function peerCounter<L extends string> (registry: Registry, source: PeerSource, name: string, help: string, labelNames: L[], each: Each<L>): void {
  new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      this.reset()
      for (const status of source.status()) each(status, (labels, value) => { this.inc(labels, value) })
    }
  })
}

/**
 * Per-peer series, labelled by peer id (`peer`); `dw_peer_info` carries the
 * name from the peer book for joins. Peers are only those in the book, so
 * the series stay as few as the sites an admin trusts.
 */
export function registerPeerGauges (registry: Registry, source: PeerSource): void {
  peerGauge(registry, source, 'dw_peer_info', 'A peer in the peer book (value 1), with its name from the book ("" when unnamed).', ['peer', 'name'],
    (s, set) => { set({ peer: s.peerId, name: s.name ?? '' }, 1) })
  peerGauge(registry, source, 'dw_peer_connected', 'Whether the peer is connected now (1) or not (0).', ['peer'],
    (s, set) => { set({ peer: s.peerId }, s.connected ? 1 : 0) })
  peerGauge(registry, source, 'dw_peer_lag_seconds', 'Seconds since this node last held everything the peer had offered: 0 while a live session with it is caught up; counted from when the peer was added if it never synced.', ['peer'],
    (s, set) => {
      const lag = lagSeconds(s, source.addedAt(s.peerId), Date.now())
      if (lag !== undefined) set({ peer: s.peerId }, lag)
    })
  peerGauge(registry, source, 'dw_peer_last_sync_timestamp_seconds', 'When this node last held everything the peer had offered (Unix time); absent if never.', ['peer'],
    (s, set) => { if (s.lastSyncAt !== undefined) set({ peer: s.peerId }, Date.parse(s.lastSyncAt) / 1000) })
  peerGauge(registry, source, 'dw_peer_lag_records', 'Feed positions not yet synced, an upper bound on records: direction="in" the peer\'s changes not yet applied here, "out" ours it has not acknowledged; absent until known in this run.', ['peer', 'direction'],
    (s, set) => {
      if (s.behindPeer !== null) set({ peer: s.peerId, direction: 'in' }, s.behindPeer)
      if (s.peerBehind !== null) set({ peer: s.peerId, direction: 'out' }, s.peerBehind)
    })
  peerGauge(registry, source, 'dw_peer_throttled', 'Whether the peer is over a sync quota now (1) or not (0).', ['peer'],
    (s, set) => { set({ peer: s.peerId }, s.throttled === undefined ? 0 : 1) })
  peerCounter(registry, source, 'dw_peer_sync_bytes_total', 'Bytes on the sync streams with the peer since this node started, by direction (in, out).', ['peer', 'direction'],
    (s, set) => {
      set({ peer: s.peerId, direction: 'in' }, s.bytesIn)
      set({ peer: s.peerId, direction: 'out' }, s.bytesOut)
    })
  peerCounter(registry, source, 'dw_peer_records_sent_total', 'Records sent to the peer since this node started.', ['peer'],
    (s, set) => { set({ peer: s.peerId }, s.recordsOut) })
  // Not a counter: the sync service counts records received per session,
  // and two sessions with one peer (a live one and a `dw sync`) take turns.
  peerGauge(registry, source, 'dw_peer_session_records_received', 'Records received from the peer in its latest sync session (a live session lasts as long as the connection).', ['peer'],
    (s, set) => { set({ peer: s.peerId }, s.recordsIn) })
}
