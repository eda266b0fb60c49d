import { join } from 'node:path'
import { openDb, jsonSublevel, binarySublevel } from '../../src/db.ts'
import type { DocMeta } from '../../src/crdt/doc-store.ts'

/**
 * A deliberate data fault for showing that the checker catches loss: with
 * the node stopped, removes one record from its LevelDB (snapshot, chunks,
 * meta and feed entry), as a disk losing a file would. The node starts
 * again believing it is up to date with its peers (its checkpoints say so),
 * so nothing brings the record back unless the record changes again.
 */
export async function loseRecord (dataDir: string, key: string): Promise<{ removed: boolean, seq?: number, chunks?: number }> {
  const db = await openDb(join(dataDir, 'db'))
  try {
    const meta = jsonSublevel<DocMeta>(db, 'meta')
    const snap = binarySublevel(db, 'snap')
    const chunk = binarySublevel(db, 'chunk')
    const feed = jsonSublevel<string>(db, 'feed')
    const m = await meta.get(key)
    if (m === undefined) return { removed: false }
    const ops: any[] = [
      { type: 'del', sublevel: meta, key },
      { type: 'del', sublevel: snap, key },
      { type: 'del', sublevel: feed, key: m.seq.toString().padStart(16, '0') }
    ]
    for (let k = 0; k < m.chunks; k++) ops.push({ type: 'del', sublevel: chunk, key: `${key}\x00${k.toString().padStart(8, '0')}` })
    await db.batch(ops, { sync: true })
    return { removed: true, seq: m.seq, chunks: m.chunks }
  } finally {
    await db.close()
  }
}
