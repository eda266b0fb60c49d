/**
 * What one dataset record costs, at least, in the formats a sync could
 * send it in: the floor under issue 11's remaining targets (docs/benchmarks.md,
 * "The floor under the remaining targets").
 *
 *   npm run bench:format-floor                       # 2,000 records, 5 rounds
 *   node scripts/bench-format-floor.ts --records 5000 --rounds 7
 *
 * For the records `npm run bench:link` and `bench:sync` create (~500 bytes
 * of JSON), built as the node builds them (initDataset), and for two
 * variants with fewer Automerge text fields (ImmutableString scalars for every
 * string but the description, and for every string):
 *
 * - bytes: the document as a node stores and sends it (saved with
 *   uncompressed columns), and its change chunk, each compressed in
 *   batches of 256 with zstd as a sync session does (level 9 with
 *   level 3's match tables, src/peer/sync/compression.ts);
 * - Automerge.load per record, which the document checker's worker does
 *   for every document a peer sends (median of the rounds, the variants
 *   interleaved in each round so machine noise hits them alike);
 * - the same for the change chunk, and Ed25519 verification of one
 *   change signature, which the node does for every received change.
 *
 * The budget line is issue 11's: 2.4 MB for 10,000 records, everything on
 * the wire included. Nothing here touches the network or a node.
 */
import { generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto'
import { constants, zstdCompressSync } from 'node:zlib'
import { parseArgs } from 'node:util'
import * as A from '@automerge/automerge'
import { initDataset } from '../src/crdt/records/dataset.ts'
import { saveUncompressed } from '../src/crdt/chunks.ts'
import { datasetPayload, intOption, machineLine, median, table } from './bench-util.ts'

const { values } = parseArgs({ options: { records: { type: 'string' }, rounds: { type: 'string' } } })
const N = Math.max(256, intOption(values.records, 'records', 2000))
const ROUNDS = Math.max(1, intOption(values.rounds, 'rounds', 5))
const BATCH = 256
/** What a sync session's stream uses (src/peer/sync/compression.ts). */
const SESSION_ZSTD = { [constants.ZSTD_c_compressionLevel]: 9, [constants.ZSTD_c_hashLog]: 17, [constants.ZSTD_c_chainLog]: 16 }
/** Issue 11: 2.4 MB on the wire for 10,000 records. */
const BUDGET_PER_RECORD = 240
/** A signature entry under `sig8`: 8 bytes of the change hash, then the 64-byte signature. */
const SIG_ENTRY = 72

type Variant = 'text fields (today)' | 'scalars but description' | 'all scalars'
const VARIANTS: Variant[] = ['text fields (today)', 'scalars but description', 'all scalars']

/** The record's fields with its strings as ImmutableString scalars (one operation each instead of one per character). */
function scalarised (record: Record<string, unknown>, variant: Variant): Record<string, unknown> {
  if (variant === 'text fields (today)') return record
  const walk = (value: unknown, key: string): unknown => {
    if (typeof value === 'string') return variant === 'scalars but description' && key === 'description' ? value : new A.ImmutableString(value)
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]))
    return value
  }
  return walk(record, '') as Record<string, unknown>
}

function build (variant: Variant, i: number): { saved: Uint8Array, change: Uint8Array, ops: number } {
  // The fields as the node writes them, then written in one change as this variant would.
  const record: Record<string, unknown> = {}
  initDataset(record, 'dataset', randomUUID(), datasetPayload(i), { userId: randomUUID(), at: new Date(1_764_000_000_000 + i * 1000).toISOString() })
  const fields = scalarised(record, variant)
  const doc = A.change(A.init<any>({ actor: randomUUID().replace(/-/g, '') }), d => { Object.assign(d, fields) })
  const change = A.getAllChanges(doc)[0] as Uint8Array
  const out = { saved: saveUncompressed(doc), change, ops: A.stats(doc).numOps }
  A.free(doc)
  return out
}

function compressedPerRecord (items: Uint8Array[]): number {
  let total = 0
  for (let i = 0; i < items.length; i += BATCH) {
    total += zstdCompressSync(Buffer.concat(items.slice(i, i + BATCH)), { params: SESSION_ZSTD }).length
  }
  return total / items.length
}

function loadMicros (items: Uint8Array[]): number {
  const start = performance.now()
  for (const bytes of items) A.free(A.load(bytes, { actor: '00'.repeat(16) }))
  return (performance.now() - start) * 1000 / items.length
}

let json = 0
for (let i = 0; i < N; i++) json += JSON.stringify(datasetPayload(i)).length
const built = new Map(VARIANTS.map(v => [v, Array.from({ length: N }, (_, i) => build(v, i))]))
const loads = new Map<string, number[]>()
const sample = (key: string, v: number): void => { loads.set(key, [...(loads.get(key) ?? []), v]) }
for (let round = 0; round < ROUNDS; round++) {
  for (const v of VARIANTS) {
    const docs = built.get(v) ?? []
    sample(`${v}/saved`, loadMicros(docs.map(d => d.saved)))
    sample(`${v}/change`, loadMicros(docs.map(d => d.change)))
  }
}

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const message = Buffer.alloc(50, 7)
const signature = sign(null, message, privateKey)
const verifies: number[] = []
for (let round = 0; round < ROUNDS; round++) {
  const start = performance.now()
  for (let i = 0; i < N; i++) verify(null, message, publicKey, signature)
  verifies.push((performance.now() - start) * 1000 / N)
}

const rows = VARIANTS.map(v => {
  const docs = built.get(v) ?? []
  const savedZ = compressedPerRecord(docs.map(d => d.saved))
  const changeZ = compressedPerRecord(docs.map(d => d.change))
  const floor = Math.min(savedZ, changeZ) + SIG_ENTRY
  return [
    v,
    String(docs[0]?.ops ?? 0),
    `${Math.round(docs.reduce((a, d) => a + d.saved.length, 0) / N)} B`,
    `${Math.round(savedZ)} B`,
    `${Math.round(changeZ)} B`,
    `${Math.round(floor)} B (${(floor / BUDGET_PER_RECORD).toFixed(2)}x)`,
    `${Math.round(median(loads.get(`${v}/saved`) ?? []))} µs`,
    `${Math.round(median(loads.get(`${v}/change`) ?? []))} µs`
  ]
})

console.log(`# The floor under a synced record (${N.toLocaleString('en-US')} records, ${ROUNDS} rounds)\n`)
console.log(machineLine(), '\n')
console.log(`JSON of the create bodies: ${Math.round(json / N)} B a record. Issue 11's budget: ${BUDGET_PER_RECORD} B a record on the wire, everything included.\n`)
console.log(table(
  ['strings', 'operations', 'saved doc', 'saved, zstd in 256s', 'change, zstd in 256s', 'smaller + 72 B signature entry (of budget)', 'Automerge.load, saved', 'Automerge.load, change'],
  rows
))
console.log(`\nEd25519 verification of one change signature (node:crypto): ${Math.round(median(verifies))} µs.`)
console.log(`At these costs 10,000 records need at least ${(median(loads.get('text fields (today)/saved') ?? []) * 10_000 / 1e6).toFixed(1)} s of one core to load as stored today, ${(median(loads.get('all scalars/saved') ?? []) * 10_000 / 1e6).toFixed(1)} s with every string a scalar.`)
