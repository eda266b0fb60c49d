import { openDb } from '../../src/db.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { initDataset, type DatasetInput } from '../../src/crdt/records/dataset.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { tempDir } from './tmp.ts'

/** The author of test changes made straight on a store. */
export const TEST_ACTOR = { userId: 'u', at: '2026-01-01T00:00:00.000Z' }

/** A record store on a real LevelDB in a temp directory, closed when the test ends (no trust gate). */
export async function testStore (t: { teardown: (fn: () => Promise<void> | void) => void }): Promise<DocStore> {
  const db = await openDb(await tempDir(t))
  t.teardown(async () => { await db.close() })
  return await DocStore.open(db, { summarise })
}

/** Creates `n` datasets one after another; returns their keys in order. */
export async function addDatasets (s: DocStore, n: number, input: (i: number) => DatasetInput = i => ({ name: `survey ${i}` })): Promise<string[]> {
  const keys: string[] = []
  for (let i = 0; i < n; i++) {
    const id = newId()
    keys.push(docKey('dataset', id))
    await s.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, input(i), TEST_ACTOR))
  }
  return keys
}
