import type { AuditLog } from '../audit.ts'
import type { NodeConfig } from '../config.ts'
import { jsonSublevel } from '../db.ts'
import { DwError } from '../errors.ts'
import { Backups, type LastBackup } from '../backup/backups.ts'
import { resolveBackupSchedule } from '../backup/schedule.ts'
import type { Core } from './core.ts'
import type { FileTransfer } from './file-transfer.ts'
import type { Unwind } from './unwind.ts'

/** Backups on request and on the schedule config.json sets. */
export async function startBackups (core: Core, dataDir: string, config: NodeConfig, peerId: string, transfer: FileTransfer, audit: AuditLog, unwind: Unwind): Promise<Backups> {
  let schedule
  try {
    schedule = resolveBackupSchedule(config.backup)
  } catch (err) {
    throw new DwError('CONFIG_INVALID', `config.json: ${(err as Error).message}`)
  }
  const backups = new Backups({
    dataDir,
    db: core.db,
    blobs: core.blobs,
    guard: transfer.files.guard,
    feed: () => ({ epoch: core.docs.epoch, seq: core.docs.seq }),
    flush: async () => { await core.docs.flush() },
    peerId,
    name: config.name,
    blobStore: config.blobs.type
  }, jsonSublevel<LastBackup>(core.db, 'backup'), audit, schedule)
  await backups.start()
  unwind.push(async () => { await backups.stop() })
  return backups
}
