import { Counter, type Registry } from 'prom-client'
import type { AuditEntry, AuditLog, AuditType } from '../audit.ts'

/**
 * Problems with a trusted peer, by kind. A label takes its values from
 * these tables only, never from an entry's message, record id or reason
 * text: those are free text, and a label value per distinct text would
 * grow the series without bound.
 */
const SYNC_ERRORS: Partial<Record<AuditType, string>> = {
  'sync.violation': 'protocol',
  'sync.throttled': 'quota',
  'blob.mismatch': 'file_mismatch'
}

/** What this node refused, by kind. */
const REFUSALS: Partial<Record<AuditType, string>> = {
  'sync.refused': 'rules',
  'sync.quarantined': 'quarantine',
  'peer.refused': 'untrusted_peer'
}

/** The peers the series are labelled with: those in the peer book. */
export interface PeerLabels {
  /** Every peer in the book now. */
  ids: () => string[]
  /** An entry's peer if in the book, else one shared value (an untrusted id costs nothing to mint). */
  label: (peer: string | undefined) => string
}

/**
 * Counters of audited events: sync sessions and their outcome, sync errors
 * and refusals by kind. They follow the audit log, where each of these is
 * recorded once whatever part of the node saw it, so no counting code is
 * spread across the sync and blob protocols. Returns the unsubscribe.
 */
export function countAuditedEvents (audit: AuditLog, registry: Registry, peers: PeerLabels): () => void {
  // Each peer's series appear at 0 as soon as it is in the book, so that
  // increase() sees its first error as one (a series that starts at 1 has
  // no earlier sample to increase from).
  const sessions = new Counter({
    name: 'dw_sync_sessions_total',
    help: 'Sync sessions pulling from a peer: outcome="ok" when one first caught up, "error" when one failed while the peer stayed connected.',
    labelNames: ['peer', 'outcome'],
    registers: [registry],
    collect () { for (const peer of peers.ids()) for (const outcome of ['ok', 'error']) this.inc({ peer, outcome }, 0) }
  })
  const errors = new Counter({
    name: 'dw_sync_errors_total',
    help: 'Problems with a peer by reason: protocol (it broke the sync or blob protocol), quota (over a sync quota), file_mismatch (file bytes not matching their hash).',
    labelNames: ['peer', 'reason'],
    registers: [registry],
    collect () { for (const peer of peers.ids()) for (const reason of Object.values(SYNC_ERRORS)) this.inc({ peer, reason }, 0) }
  })
  const refusals = new Counter({
    name: 'dw_refusals_total',
    help: 'What this node refused, by reason: rules (changes the permission rules refused), quarantine (documents that broke a load limit), untrusted_peer (connections from sites not in the peer book, at most one a minute per site).',
    labelNames: ['reason'],
    registers: [registry]
  })
  // Every reason from the start, for the same reason.
  for (const reason of Object.values(REFUSALS)) refusals.inc({ reason }, 0)

  const onEntry = (entry: AuditEntry): void => {
    if (entry.type === 'sync.session') {
      sessions.inc({ peer: peers.label(entry.peer), outcome: entry.outcome ?? 'ok' })
      return
    }
    const error = SYNC_ERRORS[entry.type]
    if (error !== undefined) errors.inc({ peer: peers.label(entry.peer), reason: error })
    const refusal = REFUSALS[entry.type]
    if (refusal !== undefined) {
      // Past 100 refusals in one batch, the rest are audited as one entry with their count.
      const more = entry.details?.more
      refusals.inc({ reason: refusal }, typeof more === 'number' && Number.isSafeInteger(more) && more > 0 ? more : 1)
    }
  }
  audit.on('appended', onEntry)
  return () => { audit.off('appended', onEntry) }
}
