import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { openDb } from '../db.ts'
import type { BlobStore } from '../blobs/blob-store.ts'
import { CONFIG_FILE, readConfig } from '../config.ts'
import { IDENTITY_FILE } from '../peer/identity.ts'
import { DwError } from '../errors.ts'
import { openBlobStore } from '../start/core.ts'
import { DATA_FILE_MODE, makeDataDir, restrictTree } from '../start/data-dir.ts'
import { markRestored } from '../start/instance.ts'
import type { BackupManifest } from './archive.ts'
import { loadEveryRecord, readBackup } from './read-backup.ts'

export interface VerifyResult {
  manifest: Omit<BackupManifest, 'blobs'>
  records: number
  blobs: number
  blobBytes: number
}

function loadFailure (what: string, failed: Array<{ key: string, error: string }>): DwError {
  const first = failed.slice(0, 3).map(f => `${f.key}: ${f.error}`).join('; ')
  return new DwError('INVALID_INPUT', `${what}: ${failed.length} record(s) do not load (${first})`)
}

function describe (manifest: BackupManifest): Omit<BackupManifest, 'blobs'> {
  const { blobs: _blobs, ...rest } = manifest
  return rest
}

/**
 * Checks a backup archive end to end without touching any node: every
 * entry in place, every blob hashing to its name, and every record loading
 * from a scratch database built from it.
 */
export async function verifyBackup (path: string, onBytes?: (n: number) => void): Promise<VerifyResult> {
  const scratch = await mkdtemp(join(tmpdir(), 'dw-verify-'))
  try {
    const db = await openDb(join(scratch, 'db'))
    try {
      const read = await readBackup(path, { db, onBytes })
      const loaded = await loadEveryRecord(db)
      if (loaded.failed.length > 0) throw loadFailure(path, loaded.failed)
      return { manifest: describe(read.manifest), records: loaded.records, blobs: read.summary.blobs, blobBytes: read.summary.blobBytes }
    } finally {
      await db.close()
    }
  } finally {
    await rm(scratch, { recursive: true, force: true })
  }
}

export interface RestoreResult extends VerifyResult {
  /** Blobs the manifest names that are neither in the archive nor in the configured store. */
  missingBlobs: number
}

/**
 * Makes `dataDir` a new incarnation of the node a backup was taken from:
 * its identity, config, database and files. Its first start begins a new
 * feed epoch (src/start/instance.ts), so no peer's checkpoint skips what it
 * writes afterwards, and its peers send back what was written since the
 * backup. Refuses a directory that holds anything: a restore never
 * overwrites a node.
 */
export async function restoreBackup (path: string, dataDir: string, onBytes?: (n: number) => void): Promise<RestoreResult> {
  const existing = await readdir(dataDir).catch((err: any) => { if (err?.code === 'ENOENT') return []; throw err })
  if (existing.length > 0) throw new DwError('ALREADY_INITIALISED', `${dataDir} is not empty: restore into a new directory (a restore never overwrites a node)`)
  await makeDataDir(dataDir)
  let store: BlobStore | undefined
  let done = false
  try {
    const db = await openDb(join(dataDir, 'db'))
    let read
    let loaded
    try {
      read = await readBackup(path, {
        db,
        onBytes,
        openBlobs: async config => {
          // The config is written first, so the store opens exactly as the node will.
          await writeFile(join(dataDir, CONFIG_FILE), config, { mode: DATA_FILE_MODE })
          store = await openBlobStore(dataDir, (await readConfig(dataDir)).blobs)
          return store
        }
      })
      loaded = await loadEveryRecord(db)
    } finally {
      await db.close()
    }
    if (loaded.failed.length > 0) throw loadFailure(`the restore from ${path}`, loaded.failed)
    await writeFile(join(dataDir, CONFIG_FILE), read.config, { mode: DATA_FILE_MODE })
    await writeFile(join(dataDir, IDENTITY_FILE), read.identity, { mode: DATA_FILE_MODE })
    store ??= await openBlobStore(dataDir, (await readConfig(dataDir)).blobs)
    let missingBlobs = 0
    for (const blob of read.manifest.blobs) if (!await store.has(blob.sha256)) missingBlobs += 1
    await markRestored(dataDir, `${basename(path)} (taken ${read.manifest.createdAt})`)
    await restrictTree(dataDir)
    done = true
    return { manifest: describe(read.manifest), records: loaded.records, blobs: read.summary.blobs, blobBytes: read.summary.blobBytes, missingBlobs }
  } finally {
    await store?.close()
    // Half a node is worse than none: a failed restore leaves the directory empty again.
    if (!done) await emptyDir(dataDir)
  }
}

async function emptyDir (dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, name), { recursive: true, force: true })
}
