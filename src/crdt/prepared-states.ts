import * as A from '@automerge/automerge'

/**
 * What the document checker's worker, which loads every document a peer
 * sends anyway, hands back so the node's thread need not load it again:
 * the new changes, the document after each, and what each touched. The
 * node judges the changes on these states and stores the bytes as they
 * came (docs/trust.md, "One set of rules, on both paths"). Loading a
 * document was most of the node thread's cost of a sync: ~1.3 ms of ~1.9
 * ms a record.
 *
 * Only a plain line of changes qualifies: each built on the one before,
 * the first on the state this node holds (or on nothing, for a document
 * new here), and states of plain JSON only (maps, lists, strings, numbers,
 * booleans, null), which a structured clone copies exactly. Anything else
 * (a Counter, a scalar string, bytes, concurrent changes, a long history)
 * is loaded by the node as before, so its judgement sees the same values
 * either way.
 */
export interface PreparedDoc {
  /** The document's heads once the changes are in. */
  heads: string[]
  /** The new changes, in order: each one's only dependency is the one before it. */
  changes: Array<{ hash: string, deps: string[], message: string | null }>
  /** The document after each change. */
  states: unknown[]
  /** The state the changes were made on (undefined for a document new here). */
  before: unknown
  /** The fields, and keys below them ('' for the field itself), each change touched; [] for a document's first change, which touched everything. */
  touched: Array<Array<[string, string]>>
  /** What the states hold, counted as the document's operations once per state (and the state before): a bound on their size. */
  ops: number
}

/** Longer lines are loaded by the node: a state per change, each copied across threads, grows as the square of the history. */
export const MAX_PREPARED_CHANGES = 8

/**
 * The prepared states of `doc` after the changes since `since` (the heads
 * of `base`, the document as this node holds it, or [] for none), or
 * undefined when they do not qualify or would hold more than `maxOps`
 * operations in all. `numOps`: the document's operations, which the
 * caller has counted already.
 */
export function prepareStates (doc: A.Doc<any>, base: A.Doc<any> | undefined, since: string[], patches: A.Patch[] | undefined, limits: { numOps: number, maxOps: number }): PreparedDoc | undefined {
  if (A.getMissingDeps(doc, []).length > 0) return undefined
  const metas = A.getChangesMetaSince(doc, since)
  if (metas.length === 0 || metas.length > MAX_PREPARED_CHANGES) return undefined
  const ops = limits.numOps * (metas.length + (base === undefined ? 0 : 1))
  if (ops > limits.maxOps) return undefined
  for (const [i, m] of metas.entries()) {
    const expected = i === 0 ? since : [(metas[i - 1] as { hash: string }).hash]
    if (m.deps.length !== expected.length || !m.deps.every(d => expected.includes(d))) return undefined
  }
  const last = metas.length - 1
  const states = metas.map((m, i) => i === last ? doc : A.view(doc, [m.hash]))
  if (!states.every(isPlain) || (base !== undefined && !isPlain(base))) return undefined
  const touched = metas.map((m, i) => {
    if (i === 0 && base === undefined) return []
    // The merge's own patches are the first change's when it is the only one.
    const diff = i === 0 && last === 0 && patches !== undefined ? patches : A.diff(doc, m.deps, [m.hash])
    return touchedPairs(diff)
  })
  return {
    heads: A.getHeads(doc),
    changes: metas.map(m => ({ hash: m.hash, deps: m.deps, message: m.message })),
    states,
    before: base,
    touched,
    ops
  }
}

/** [field, key] of every patch ('' when it is the field itself). */
export function touchedPairs (patches: A.Patch[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const patch of patches) {
    const [field, key] = patch.path
    if (typeof field !== 'string') continue
    out.push([field, patch.path.length > 1 ? String(key) : ''])
  }
  return out
}

/** The pairs as the rules read them: field -> keys. */
export function touchedMap (pairs: Array<[string, string]>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const [field, key] of pairs) {
    let keys = out.get(field)
    if (keys === undefined) { keys = new Set(); out.set(field, keys) }
    keys.add(key)
  }
  return out
}

/** Maps of plain objects, arrays, strings, finite numbers, booleans and null only, walked without recursion. */
export function isPlain (value: unknown): boolean {
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return false
      continue
    }
    if (typeof v !== 'object') return false
    if (Array.isArray(v)) {
      if (Object.getPrototypeOf(v) !== Array.prototype) return false
      for (const x of v) stack.push(x)
      continue
    }
    if (Object.getPrototypeOf(v) !== Object.prototype) return false
    for (const x of Object.values(v as Record<string, unknown>)) stack.push(x)
  }
  return true
}
