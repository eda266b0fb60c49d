/**
 * Documents arrive from peers, so their shape is never guaranteed: another
 * version of dw-mesh, or a faulty peer, may send `metadata: null` or a
 * version without files. Readers use these guards instead of trusting it.
 */
export function asMap (value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : {}
}

export function asList (value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

export function asText (value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value)
}

/** File references of a version or report that have the fields a file needs. */
export function fileRefs (value: unknown): Array<{ name: string, sha256: string, size: number, mediaType: string }> {
  return asList(value).filter((f): f is { name: string, sha256: string, size: number, mediaType: string } => {
    const m = asMap(f)
    return typeof m.name === 'string' && typeof m.sha256 === 'string' && /^[0-9a-f]{64}$/.test(m.sha256) && typeof m.size === 'number'
  })
}
