import { readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DATA_FILE_MODE } from './data-dir.ts'

/**
 * Which physical copy of a data directory this is. A copy (`cp -a`, rsync,
 * a restore by hand, `dw restore`) holds the same feed as the node it was
 * copied from, under the same epoch: sequence numbers its peers already
 * hold checkpoints for, about to be reused for different changes. So a
 * copy starts a new feed epoch, and every peer compares everything with it
 * once, by heads, instead of trusting a checkpoint.
 *
 * The stamp is the directory's inode and birth time: a copy gets new ones,
 * a move within a filesystem, a reboot, a remount or a new container on the
 * same volume keeps them. (A VM snapshot rolled back keeps them too; the
 * replication log catches that case, docs/sync-protocol.md.)
 */
export const INSTANCE_FILE = 'instance.json'

interface InstanceStamp {
  ino: number
  /** Birth time in ms (0 where the filesystem does not record one). */
  birth: number
  /** Set by `dw restore`: the next start begins a new incarnation. */
  restoredFrom?: string
}

export type Incarnation =
  | { renew: false }
  | { renew: true, why: 'restored' | 'copied', detail: string }

async function here (dataDir: string): Promise<{ ino: number, birth: number }> {
  const s = await stat(dataDir)
  return { ino: s.ino, birth: Math.floor(s.birthtimeMs) }
}

async function readStamp (dataDir: string): Promise<InstanceStamp | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(dataDir, INSTANCE_FILE), 'utf8'))
    return typeof parsed?.ino === 'number' && typeof parsed?.birth === 'number' ? parsed : undefined
  } catch {
    // Missing (a node made before stamps) or unreadable: stamped afresh, no renewal.
    return undefined
  }
}

async function writeStamp (dataDir: string, stamp: InstanceStamp): Promise<void> {
  const path = join(dataDir, INSTANCE_FILE)
  await writeFile(`${path}.tmp`, JSON.stringify(stamp) + '\n', { mode: DATA_FILE_MODE })
  await rename(`${path}.tmp`, path)
}

/** Whether this start must begin a new feed epoch, and why. Call `stampInstance` once the store has renewed it. */
export async function incarnationOf (dataDir: string): Promise<Incarnation> {
  const stamp = await readStamp(dataDir)
  if (stamp === undefined) return { renew: false }
  if (stamp.restoredFrom !== undefined) return { renew: true, why: 'restored', detail: stamp.restoredFrom }
  const now = await here(dataDir)
  if (now.ino !== stamp.ino || (stamp.birth !== 0 && now.birth !== 0 && now.birth !== stamp.birth)) {
    return { renew: true, why: 'copied', detail: `${dataDir} is not the directory this node last ran in` }
  }
  return { renew: false }
}

/** Records this directory as the node's own (after a renewal, so a crash in between only renews once more). */
export async function stampInstance (dataDir: string): Promise<void> {
  await writeStamp(dataDir, await here(dataDir))
}

/** Marks a restored data directory: its first start begins a new incarnation. */
export async function markRestored (dataDir: string, from: string): Promise<void> {
  await writeStamp(dataDir, { ...await here(dataDir), restoredFrom: from })
}

/** What an admin is told when a start renews the feed epoch. */
export function renewalWarning (incarnation: Incarnation & { renew: true }): string {
  if (incarnation.why === 'restored') {
    return `this node was restored from ${incarnation.detail}: it starts a new feed epoch, so its peers compare everything with it once and it pulls back what was written since the backup`
  }
  return `${incarnation.detail} (copied, or restored by hand): it starts a new feed epoch, so its peers compare everything with it once. If the node it was copied from still runs, stop one of them: both are the same site, with the same identity`
}
