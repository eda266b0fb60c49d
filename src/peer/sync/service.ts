import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId } from '@libp2p/interface'
import type { AuditLog } from '../../audit.ts'
import type { Sublevel } from '../../db.ts'
import { DwError, isDwError } from '../../errors.ts'
import { sleep } from '../../abortable.ts'
import { FramedStream } from '../framed-stream.ts'
import type { PeerNode } from '../libp2p.ts'
import type { PeerBook } from '../peer-book.ts'
import { isThinLink } from '../link-profile.ts'
import type { LinkPriority } from '../link-priority.ts'
import type { ProtocolHost } from '../protocol-host.ts'
import { MAX_SYNC_MESSAGE, SYNC_PROTOCOL } from './messages.ts'
import { auditRefusals } from '../../trust/refusals.ts'
import { pullSync } from './pull.ts'
import { Redialer, sessionBackoffMs, type RedialOptions } from './redial.ts'
import { Dialer } from './dialer.ts'
import { PeerStates, moveByteCounts, type PeerSyncStatus } from './peer-status.ts'
export type { PeerSyncStatus } from './peer-status.ts'
import { serveSync } from './serve.ts'
import { QuotaLedger } from './quota.ts'
import { emptyStats, type Checkpoint, type SessionStats, type SyncableStore } from './types.ts'
import type { ReplicationLog } from './replication-log.ts'

export interface SyncNowResult {
  peerId: string
  name?: string
  ok: boolean
  received: number
  /** The peer confirmed it holds everything we had when the sync began. */
  peerCaughtUp: boolean
  error?: string
}

export interface SyncServiceInit {
  node: PeerNode
  /** Where sync streams pass the trust gate. */
  host: ProtocolHost
  store: SyncableStore
  book: PeerBook
  checkpoints: Sublevel<Checkpoint>
  /** This node's side of each puller's replication log. */
  served: ReplicationLog
  audit: AuditLog
  redial?: Partial<RedialOptions>
  /** What each peer may make this node take in (docs/operations.md, "Limits"). */
  quotas?: QuotaLedger
  /** Told when records are moving to a peer, so file bytes to it wait (issue 11). */
  priority?: Pick<LinkPriority, 'syncBusy'>
  log?: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void }
}

const noLog = { info: () => {}, warn: () => {} }

/**
 * Keeps this node in sync with every trusted peer it can reach: serves
 * `/dw/sync/2.0.0` to them (through the protocol host), runs one live pull from each connected peer
 * (so their changes arrive as they are made), redials peers that are away,
 * and reports status. Each direction is a pull by the receiver, which is the
 * only side that knows when what it received is durable.
 */
export class SyncService {
  readonly #init: SyncServiceInit
  readonly #peers = new PeerStates()
  readonly #redialer: Redialer
  readonly #dialer: Dialer
  readonly #log: NonNullable<SyncServiceInit['log']>
  readonly #abort = new AbortController()
  readonly #tasks = new Set<Promise<unknown>>()
  readonly #quotas: QuotaLedger

  constructor (init: SyncServiceInit) {
    this.#init = init
    this.#quotas = init.quotas ?? new QuotaLedger()
    this.#log = init.log ?? noLog
    this.#dialer = new Dialer(init.node, init.book)
    this.#redialer = new Redialer({
      ...init.redial,
      due: () => init.book.list().filter(p => !this.#peers.get(p.peerId).connected).map(p => p.peerId),
      dial: async (peerId) => { await this.#dial(peerId) }
    })
  }

  async start (): Promise<void> {
    const { node } = this.#init
    await this.#init.host.handle({
      protocol: SYNC_PROTOCOL,
      maxMessageSize: MAX_SYNC_MESSAGE,
      maxInboundStreams: 4,
      serve: async (framed, peerId) => { await this.#serve(framed, peerId) }
    }, p => { this.#track(p) })
    node.addEventListener('peer:connect', this.#onConnect)
    node.addEventListener('peer:disconnect', this.#onDisconnect)
    for (const conn of node.getConnections()) this.#onConnected(conn.remotePeer)
    this.#redialer.start()
  }

  async stop (): Promise<void> {
    this.#abort.abort()
    this.#redialer.stop()
    const { node } = this.#init
    node.removeEventListener('peer:connect', this.#onConnect)
    node.removeEventListener('peer:disconnect', this.#onDisconnect)
    await this.#init.host.unhandle(SYNC_PROTOCOL)
    await Promise.allSettled([...this.#tasks])
  }

  /** Dials a newly trusted peer at once instead of waiting for the redial timer. */
  peerAdded (peerId: string): void {
    this.#redialer.reset(peerId)
    this.#track(this.#dial(peerId).catch(() => {}))
  }

  /** Cuts a peer off at once: its connections close and the gater keeps it out. */
  async peerRemoved (peerId: string): Promise<void> {
    this.#peers.forget(peerId)
    await this.#init.node.hangUp(peerIdFromString(peerId)).catch(() => {})
  }

  status (): PeerSyncStatus[] {
    return this.#peers.status(this.#init.book.list(), this.#init.store.seq).map(status => {
      const throttle = this.#quotas.throttled(status.peerId)
      if (throttle === undefined) return status
      return { ...status, throttled: throttle.until === undefined ? { reason: throttle.reason } : { reason: throttle.reason, until: new Date(throttle.until).toISOString() } }
    })
  }

  /**
   * Syncs with every trusted peer now: dials it, pulls everything it has,
   * and waits (up to the timeout) until it has acknowledged everything we
   * had when the call began.
   *
   * `full` is the repair pass: the pull starts at the beginning of the
   * peer's feed instead of this node's checkpoint, so every record the peer
   * holds is compared by heads and whatever this node lacks (a record lost
   * from its disk, say) comes back. It costs an offer per record the peer
   * holds; records already equal move no document bytes.
   */
  async syncNow (timeoutMs = 30_000, options: { full?: boolean } = {}): Promise<SyncNowResult[]> {
    const target = this.#init.store.seq
    return await Promise.all(this.#init.book.list().map(async (entry): Promise<SyncNowResult> => {
      const result: SyncNowResult = { peerId: entry.peerId, ok: false, received: 0, peerCaughtUp: false }
      if (entry.name !== undefined) result.name = entry.name
      const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#abort.signal])
      try {
        await this.#dial(entry.peerId, signal)
        const stats = await this.#pull(entry.peerId, false, signal, options.full === true)
        result.received = stats.recordsReceived
        result.peerCaughtUp = await this.#waitForAck(entry.peerId, target, signal)
        result.ok = result.peerCaughtUp
        if (!result.ok) result.error = 'the peer did not confirm it has our changes in time'
      } catch (err) {
        result.error = describe(err)
      }
      return result
    }))
  }

  readonly #onConnect = (evt: CustomEvent<PeerId>): void => { this.#onConnected(evt.detail) }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const s = this.#peers.find(evt.detail.toString())
    if (s !== undefined) {
      s.connected = false
      // What it offered is vouched for by this connection only: a peer
      // restored from a backup comes back on a new one.
      s.offered.clear()
    }
  }

  #onConnected (peer: PeerId): void {
    const peerId = peer.toString()
    if (!this.#init.book.isTrusted(peerId)) return
    const s = this.#peers.get(peerId)
    s.connected = true
    if (!s.pulling) this.#track(this.#livePullLoop(peerId))
  }

  /** While connected, keeps one live pull from the peer running, restarting it after errors. */
  async #livePullLoop (peerId: string): Promise<void> {
    const s = this.#peers.get(peerId)
    s.pulling = true
    try {
      let failures = 0
      while (s.connected && this.#init.book.isTrusted(peerId) && !this.#abort.signal.aborted) {
        try {
          await this.#pull(peerId, true, this.#abort.signal)
          failures = 0
        } catch {
          failures += 1
        }
        if (!s.connected || this.#abort.signal.aborted) break
        // A peer over its hourly quota is not pulled from until its window ends.
        const until = this.#quotas.throttled(peerId)?.until
        await sleep(until !== undefined ? Math.max(0, until - Date.now()) : sessionBackoffMs(failures), this.#abort.signal)
      }
    } finally {
      s.pulling = false
    }
  }

  async #pull (peerId: string, live: boolean, signal: AbortSignal, fromStart = false): Promise<SessionStats> {
    const s = this.#peers.get(peerId)
    const started = new Date()
    const throttle = this.#quotas.throttled(peerId)
    if (throttle?.until !== undefined) throw new DwError('TOO_MANY_ATTEMPTS', `peer ${peerId} is ${throttle.reason}; it may sync again at ${new Date(throttle.until).toISOString()}`)
    await this.#connection(peerId, signal)
    const framed = await this.#init.host.open(peerId, SYNC_PROTOCOL, { maxMessageSize: MAX_SYNC_MESSAGE, signal })
    const onAbort = (): void => { framed.abort(new Error('sync stopped')) }
    signal.addEventListener('abort', onAbort)
    const saved = await this.#init.checkpoints.get(peerId) ?? { epoch: '', through: 0 }
    s.ourCheckpoint = saved.through
    // A repair pass re-reads the peer's feed from its start, but never moves
    // the checkpoint back: what lies before it was applied already.
    const checkpoint = fromStart ? { epoch: saved.epoch, through: 0 } : saved
    const behindSaved = (cp: Checkpoint): boolean => fromStart && cp.epoch === saved.epoch && cp.through <= saved.through
    let audited = false
    let stats: SessionStats | undefined
    const account = (): void => { moveByteCounts(framed, s) }
    try {
      stats = await pullSync(framed, this.#init.store, checkpoint, {
        live,
        peer: peerId,
        onOffered: items => { s.offered.offered(items) },
        charge: this.#quotas.session(peerId),
        onRewind: ({ from, was }) => {
          s.ourCheckpoint = from
          void this.#init.audit.append({ type: 'sync.rewind', peer: peerId, outcome: 'ok', details: { side: 'puller', from, was, message: 'the peer could not vouch for our checkpoint (it was restored, rolled back or copied): comparing every record by heads' } }).catch(() => {})
        },
        saveCheckpoint: async (cp) => {
          if (behindSaved(cp)) return
          await this.#init.checkpoints.put(peerId, cp)
          s.ourCheckpoint = cp.through
        },
        onRefused: (refused) => { void auditRefusals(this.#init.audit, peerId, refused).catch(() => {}) },
        onProgress: ({ remoteHead, stats }) => {
          s.remoteHead = remoteHead
          s.recordsIn = stats.recordsReceived
          account()
        },
        onCaughtUp: ({ remoteHead, stats }) => {
          // The link works both ways: if it drops now, redial at once.
          this.#redialer.reset(peerId)
          s.remoteHead = remoteHead
          s.lastSyncAt = Date.now()
          delete s.lastError
          account()
          if (!audited) {
            // A live session lasts as long as the link: its first catch-up is
            // the moment worth recording; the end is recorded too.
            audited = true
            void this.#auditSession(peerId, started, stats, 'ok')
            void this.#init.book.update(peerId, { lastSyncAt: Date.now(), lastError: null }).catch(() => {})
          }
        }
      })
      return stats
    } catch (err) {
      if (!signal.aborted && s.connected) {
        s.lastError = describe(err)
        void this.#auditSession(peerId, started, stats, 'error', s.lastError)
        if (isDwError(err, 'INVALID_MESSAGE')) {
          framed.abort(err as Error)
          void this.#init.audit.append({ type: 'sync.violation', peer: peerId, outcome: 'error', details: { message: s.lastError, side: 'puller' } })
        } else if (isDwError(err, 'TOO_MANY_ATTEMPTS')) {
          framed.abort(err as Error)
          void this.#init.audit.append({ type: 'sync.throttled', peer: peerId, outcome: 'error', details: { message: s.lastError, ...err.details } })
        }
      }
      throw err
    } finally {
      account()
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** One inbound pull from a trusted peer (the protocol host checked trust and audits violations). */
  async #serve (framed: FramedStream, peerId: string): Promise<void> {
    const s = this.#peers.get(peerId)
    const onAbort = (): void => { framed.abort(new Error('node stopping')) }
    this.#abort.signal.addEventListener('abort', onAbort)
    const stats = emptyStats()
    let countedRecords = 0
    const account = (): void => { moveByteCounts(framed, s) }
    try {
      await serveSync(framed, this.#init.store, {
        signal: this.#abort.signal,
        // Read at the session's start: a profile set later applies from the next session.
        thinLink: isThinLink(this.#init.book.link(peerId)),
        log: {
          acknowledged: async (epoch, session) => await this.#init.served.acknowledged(peerId, epoch, session),
          record: async (epoch, session, through) => { await this.#init.served.record(peerId, epoch, session, through) }
        },
        onRewind: ({ since, reason }) => {
          void this.#init.audit.append({ type: 'sync.rewind', peer: peerId, outcome: 'ok', details: { side: 'server', since, message: `the peer's checkpoint is not trusted: ${reason}; it compares every record by heads` } }).catch(() => {})
        },
        onBusy: busy => { this.#init.priority?.syncBusy(peerId, busy) },
        peerHas: (key, heads) => s.offered.has(key, heads),
        onAck: (through) => {
          s.theirAck = through
          // A live session lasts as long as the link: count as it goes, not at its end.
          s.recordsOut += stats.recordsSent - countedRecords
          countedRecords = stats.recordsSent
          account()
          for (const wake of s.ackWaiters.splice(0)) wake()
        }
      }, stats)
      s.recordsOut += stats.recordsSent - countedRecords
      await framed.close().catch(() => {})
    } catch (err) {
      if (isDwError(err, 'INVALID_MESSAGE')) this.#log.warn({ peer: peerId, err }, 'peer broke the sync protocol; stream reset')
      throw err
    } finally {
      this.#abort.signal.removeEventListener('abort', onAbort)
      account()
    }
  }

  async #waitForAck (peerId: string, target: number, signal: AbortSignal): Promise<boolean> {
    const s = this.#peers.get(peerId)
    while ((s.theirAck ?? -1) < target) {
      if (signal.aborted) return false
      await new Promise<void>(resolve => {
        s.ackWaiters.push(resolve)
        signal.addEventListener('abort', () => { resolve() }, { once: true })
      })
    }
    return true
  }

  async #dial (peerId: string, signal?: AbortSignal): Promise<void> {
    await this.#connection(peerId, signal)
  }

  async #connection (peerId: string, signal?: AbortSignal): Promise<Connection> {
    try {
      return await this.#dialer.connection(peerId, signal)
    } catch (err) {
      // The dial's own errors already say "unreachable at ..." or why the peer refused (link-failures.ts).
      this.#peers.get(peerId).lastError = isDwError(err, 'PEER_UNREACHABLE') || isDwError(err, 'PEER_REFUSED') ? describe(err) : `unreachable: ${describe(err)}`
      throw err
    }
  }

  async #auditSession (peerId: string, started: Date, stats: SessionStats | undefined, outcome: 'ok' | 'error', error?: string): Promise<void> {
    const s = this.#peers.get(peerId)
    const details: Record<string, unknown> = {
      start: started.toISOString(),
      end: new Date().toISOString(),
      recordsReceived: stats?.recordsReceived ?? s.recordsIn,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut
    }
    if (error !== undefined) details.error = error
    await this.#init.audit.append({ type: 'sync.session', peer: peerId, outcome, details }).catch(() => {})
  }

  #track (task: Promise<unknown>): void {
    const guarded = task.catch((err) => { this.#log.warn({ err }, 'sync task failed') })
    this.#tasks.add(guarded)
    void guarded.finally(() => this.#tasks.delete(guarded))
  }
}

function describe (err: unknown): string {
  if (err instanceof Error) return err.message.slice(0, 300)
  if (typeof err === 'string') return err.slice(0, 300)
  // libp2p rejects some dials with a bare Event, which printed as "[object Event]".
  return 'the connection closed (the peer may have refused this node: not approved yet, or removed)'
}

