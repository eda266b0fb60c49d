/**
 * Signature entries as they are stored and travel beside the changes they
 * sign: the change's hash (whole, or its first 8 bytes under `sig8`), then
 * the origin node's 64-byte Ed25519 signature.
 */

/** Bytes of a whole entry: a 32-byte hash, then a 64-byte signature. */
export const SIG_ENTRY = 96

/** Packs [hash, signature] pairs for the wire: 32 bytes of hash, 64 of signature, each. */
export function packSigs (entries: Array<[string, Uint8Array]>): Uint8Array {
  const out = new Uint8Array(entries.length * SIG_ENTRY)
  entries.forEach(([hash, sig], i) => {
    out.set(Buffer.from(hash, 'hex'), i * SIG_ENTRY)
    out.set(sig, i * SIG_ENTRY + 32)
  })
  return out
}

/** Bytes of the hash prefix that names a signature on the wire with `sig8`, and in a `SigLookup`. */
const SIG_PREFIX = 8
const SIG_BYTES = 64

/**
 * Signatures found by the first 8 bytes of their change's hash: enough to
 * tell a document's changes apart, and all a `sig8` session sends. The
 * hash a signature is verified against is always computed here from the
 * change, so a signature matched to the wrong change only fails to verify.
 */
export type SigLookup = Map<string, Uint8Array>

export function sigFor (sigs: SigLookup, hash: string): Uint8Array | undefined {
  return sigs.get(hash.slice(0, SIG_PREFIX * 2))
}

/** Unpacks entries of `entry` bytes: a hash (whole, or its first 8 bytes) then a 64-byte signature. */
export function unpackSigs (packed: Uint8Array | undefined, entry = SIG_ENTRY): SigLookup {
  const out: SigLookup = new Map()
  if (packed === undefined) return out
  for (let at = 0; at + entry <= packed.length; at += entry) {
    out.set(Buffer.from(packed.subarray(at, at + SIG_PREFIX)).toString('hex'), packed.slice(at + entry - SIG_BYTES, at + entry))
  }
  return out
}

/** The same entries with the hash cut to its first 8 bytes: 72 bytes each instead of 96. */
export function shortenSigs (packed: Uint8Array): Uint8Array {
  const n = Math.floor(packed.length / SIG_ENTRY)
  const out = new Uint8Array(n * (SIG_PREFIX + SIG_BYTES))
  for (let i = 0; i < n; i++) {
    out.set(packed.subarray(i * SIG_ENTRY, i * SIG_ENTRY + SIG_PREFIX), i * (SIG_PREFIX + SIG_BYTES))
    out.set(packed.subarray(i * SIG_ENTRY + 32, (i + 1) * SIG_ENTRY), i * (SIG_PREFIX + SIG_BYTES) + SIG_PREFIX)
  }
  return out
}

/** Bytes of an entry named by an 8-byte hash prefix. */
export const SIG_ENTRY_SHORT = SIG_PREFIX + SIG_BYTES
