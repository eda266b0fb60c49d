import type { AuditLog } from '../audit.ts'
import type { Refusal } from '../crdt/doc-store.ts'
import { parseClaims } from './claims.ts'

/** Per batch, at most this many refusals are audited one by one; the rest as a count. */
const AUDITED_PER_BATCH = 100

/**
 * Records refused changes in the audit log: the peer that sent them (absent
 * for parked changes judged again later), the node and author they claim,
 * the document and the reason. A flood of bad changes costs a bounded
 * number of entries.
 */
export async function auditRefusals (audit: AuditLog, peer: string | undefined, refused: Refusal[]): Promise<void> {
  for (const r of refused.slice(0, AUDITED_PER_BATCH)) {
    const claims = parseClaims(r.message)
    const details: Record<string, unknown> = { key: r.key, change: r.hash, reason: r.reason }
    if (claims !== undefined) { details.origin = claims.n; details.author = claims.u }
    await audit.append({ type: 'sync.refused', ...(peer !== undefined ? { peer } : {}), outcome: 'error', details })
  }
  if (refused.length > AUDITED_PER_BATCH) {
    await audit.append({ type: 'sync.refused', ...(peer !== undefined ? { peer } : {}), outcome: 'error', details: { more: refused.length - AUDITED_PER_BATCH, reason: 'further refusals in the same batch' } })
  }
}
