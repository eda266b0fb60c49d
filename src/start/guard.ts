import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { jsonSublevel } from '../db.ts'
import { DwError } from '../errors.ts'
import { DocChecker } from '../crdt/doc-checker.ts'
import { resolveDocLimits } from '../crdt/doc-limits.ts'
import { EngineWatch } from '../crdt/engine-watch.ts'
import { Quarantine, type QuarantineEntry } from '../crdt/quarantine.ts'
import type { Core } from './core.ts'
import { ReadinessCheck } from './readiness.ts'
import type { Unwind } from './unwind.ts'

export interface Guard { checker: DocChecker, quarantine: Quarantine, engine: EngineWatch, readiness: ReadinessCheck }

/**
 * What keeps hostile documents from costing the node its service: every
 * document a peer sends is loaded first in a worker within limits, one
 * that breaks them is quarantined (and audited with its peer), and a
 * failure of the engine anyway is noticed.
 */
export function startGuard (core: Core, dataDir: string, config: NodeConfig, audit: AuditLog, unwind: Unwind, onEngineFailure: () => void): Guard {
  let limits
  try {
    limits = resolveDocLimits(config.limits?.documents)
  } catch (err) {
    throw new DwError('CONFIG_INVALID', `config.json: ${(err as Error).message}`)
  }
  const checker = new DocChecker(limits)
  checker.start()
  unwind.push(async () => { await checker.stop() })
  const quarantine = new Quarantine(jsonSublevel<QuarantineEntry>(core.db, 'quarantine'), (entry) => {
    void audit.append({ type: 'sync.quarantined', ...(entry.peer === undefined ? {} : { peer: entry.peer }), outcome: 'error', details: { id: entry.id, key: entry.key, reason: entry.reason, size: entry.size } }).catch(() => {})
  })
  core.docs.guardWith({ checker, quarantine, maxOps: limits.maxOps })
  const engine = new EngineWatch(onEngineFailure)
  engine.start()
  unwind.push(async () => { engine.stop() })
  return { checker, quarantine, engine, readiness: new ReadinessCheck(core.db, dataDir, engine) }
}
