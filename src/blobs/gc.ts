import type { BlobInfo, BlobStore } from './blob-store.ts'
import type { GcGuard } from './gc-guard.ts'

export interface GcResult { removed: BlobInfo[], freedBytes: number, kept: number }

/**
 * Removes every blob that no live record references. Runs under the guard,
 * so a blob uploaded for a version not yet created is never taken.
 */
export async function collectGarbage (store: BlobStore, guard: GcGuard, isReferenced: (sha256: string) => Promise<boolean>, options: { dryRun?: boolean } = {}): Promise<GcResult> {
  return await guard.exclusive(async () => {
    const result: GcResult = { removed: [], freedBytes: 0, kept: 0 }
    const candidates: BlobInfo[] = []
    for await (const info of store.list()) {
      if (await isReferenced(info.sha256)) result.kept += 1
      else candidates.push(info)
    }
    for (const info of candidates) {
      if (options.dryRun !== true && !await store.delete(info.sha256)) continue
      result.removed.push(info)
      result.freedBytes += info.size
    }
    return result
  })
}
