/**
 * What a document received from a peer may cost this node to load. A
 * document past any of them is quarantined, never stored or relayed
 * (docs/operations.md, "Limits").
 */
export interface DocLimits {
  /** Operations in the document once merged (a few bytes can expand to millions). */
  maxOps: number
  /** Nesting of maps and lists, counted from the document's root. */
  maxDepth: number
  /** CPU time the checker's worker may spend loading one document (not the clock's: a stopped or starved node is not a hostile document). */
  maxLoadMs: number
  /** Growth of this process's resident memory while one document loads (a trip is retried once: the node's own work may have caused it). */
  maxLoadMemoryBytes: number
}

export const DEFAULT_DOC_LIMITS: DocLimits = {
  // Under a second and ~125 MB to load here (Automerge takes ~500 bytes
  // an operation); a record's metadata is nowhere near it.
  maxOps: 250_000,
  // HTTP bodies nest at most 32 levels; a record puts them a few levels down.
  maxDepth: 40,
  maxLoadMs: 10_000,
  maxLoadMemoryBytes: 256 * 1024 * 1024
}

/** The defaults with a config's overrides, each checked to be a positive integer. */
export function resolveDocLimits (overrides: Partial<DocLimits> | undefined): DocLimits {
  const out = { ...DEFAULT_DOC_LIMITS }
  for (const [name, value] of Object.entries(overrides ?? {})) {
    if (!(name in out)) throw new Error(`limits.documents.${name} is not a document limit (known: ${Object.keys(out).join(', ')})`)
    if (!Number.isSafeInteger(value) || (value as number) <= 0) throw new Error(`limits.documents.${name} must be a positive integer, got ${JSON.stringify(value)}`)
    out[name as keyof DocLimits] = value as number
  }
  return out
}
