// Deterministic randomness for the fuzz tests: one seed (printed, and
// overridable with FUZZ_SEED) drives every choice, so a failure reproduces.
// Each generated case gets a sub-seed of its own, logged with the case name,
// so a single case can be replayed in isolation.

/**
 * The run's seed: FUZZ_SEED if set (decimal or 0x hex); a fixed seed under
 * CI, so a CI run is reproducible and never flaky; else random, so runs on
 * developers' machines keep exploring.
 */
export function fuzzSeed (): number {
  const env = process.env.FUZZ_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isFinite(n)) throw new Error(`FUZZ_SEED must be a number, got ${env}`)
    return n >>> 0
  }
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') return 20261126
  return (Math.random() * 2 ** 32) >>> 0
}

/** Milliseconds a fuzz phase may run: FUZZ_MS if set, else `fallback`. */
export function fuzzMs (fallback: number): number {
  const env = Number(process.env.FUZZ_MS)
  return Number.isFinite(env) && env > 0 ? env : fallback
}

/** sfc32: small, fast, good enough for fuzzing, fully determined by the seed. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number
  readonly seed: number

  constructor (seed: number) {
    this.seed = seed >>> 0
    this.#a = 0x9e3779b9
    this.#b = 0x243f6a88
    this.#c = 0xb7e15162
    this.#d = this.seed
    for (let i = 0; i < 15; i++) this.u32()
  }

  u32 (): number {
    const a = this.#a; const b = this.#b; const c = this.#c; const d = this.#d
    const t = (((a + b) | 0) + d) | 0
    this.#d = (d + 1) | 0
    this.#a = b ^ (b >>> 9)
    this.#b = (c + (c << 3)) | 0
    this.#c = ((c << 21) | (c >>> 11)) + t | 0
    return t >>> 0
  }

  /** [0, 1) */
  float (): number { return this.u32() / 2 ** 32 }
  /** Integer in [0, n) */
  int (n: number): number { return Math.floor(this.float() * n) }
  /** Integer in [lo, hi] */
  range (lo: number, hi: number): number { return lo + this.int(hi - lo + 1) }
  bool (p = 0.5): boolean { return this.float() < p }
  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing')
    return items[this.int(items.length)] as T
  }

  /** Picks by weight: [[weight, value], ...] */
  weighted<T> (table: ReadonlyArray<readonly [number, T]>): T {
    const total = table.reduce((s, [w]) => s + w, 0)
    let x = this.float() * total
    for (const [w, v] of table) {
      if (x < w) return v
      x -= w
    }
    return (table.at(-1) as readonly [number, T])[1]
  }

  /** A size skewed towards small values but sometimes large: 0..max. */
  size (max: number): number {
    const r = this.float()
    if (r < 0.6) return this.int(Math.min(max, 16) + 1)
    if (r < 0.9) return this.int(Math.min(max, 1024) + 1)
    return this.int(max + 1)
  }

  bytes (n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 4) {
      const v = this.u32()
      out[i] = v & 0xff
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff
      if (i + 3 < n) out[i + 3] = v >>> 24
    }
    return out
  }

  hex (chars: number): string {
    let s = ''
    while (s.length < chars) s += this.u32().toString(16).padStart(8, '0')
    return s.slice(0, chars)
  }

  /** A random version-4-shaped UUID (valid for `format: uuid`). */
  uuid (): string {
    const h = this.hex(32)
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[this.int(4)] as string}${h.slice(17, 20)}-${h.slice(20, 32)}`
  }

  /** A child generator: its own stream, reproducible from the returned seed. */
  fork (): Rng { return new Rng(this.u32()) }

  /** Text of up to `max` characters from a hostile alphabet. */
  string (max: number): string {
    const n = this.size(max)
    const alphabet = this.pick(ALPHABETS)
    if (alphabet === 'repeat') return this.pick(['a', 'é', '💥', '\u0000', '../', '%00', '\\']).repeat(Math.max(1, Math.ceil(n / 3)))
    let s = ''
    for (let i = 0; i < n; i++) {
      if (alphabet === 'ascii') s += String.fromCharCode(this.range(32, 126))
      else if (alphabet === 'control') s += String.fromCharCode(this.int(32))
      else if (alphabet === 'unicode') s += String.fromCodePoint(this.pick([this.range(0x80, 0x7ff), this.range(0x800, 0xd7ff), this.range(0x10000, 0x10ffff), 0x202e, 0xfeff, 0x200b]))
      else if (alphabet === 'surrogate') s += String.fromCharCode(this.range(0xd800, 0xdfff))
      else s += this.pick(['/', '.', '..', '%2e', '%2f', '\\', '~', '*', '?', '#', ' ', '\n', '"', "'", '<', '>', '$', '{', '}'])
    }
    return s
  }
}

const ALPHABETS = ['ascii', 'ascii', 'unicode', 'control', 'surrogate', 'path', 'repeat'] as const

/** Numbers that break validators: negative, fractional, huge, non-finite. */
export function nastyNumber (rng: Rng): number | bigint {
  return rng.pick<number | bigint>([
    -1, -0, 0.5, -0.5, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 31, 2 ** 32, 2 ** 64,
    Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON,
    NaN, Infinity, -Infinity, 2n ** 64n - 1n, -(2n ** 63n), rng.range(-1000, 1000), rng.float() * 1e6
  ])
}

/**
 * A random CBOR-encodable value. `budget` bounds the number of items, so the
 * decoded size stays proportional to the encoded size (see the decode-bomb
 * case for what happens otherwise).
 */
export function randomValue (rng: Rng, depth = 0, budget = { items: 2000 }): unknown {
  budget.items -= 1
  const leafOnly = depth > 6 || budget.items <= 0
  const kind = rng.int(leafOnly ? 8 : 11)
  switch (kind) {
    case 0: return null
    case 1: return rng.bool()
    case 2: return rng.range(-100, 100_000)
    case 3: return nastyNumber(rng)
    case 4: return rng.string(64)
    case 5: return rng.bytes(rng.size(300))
    case 6: return rng.pick(['hello', 'want', 'ack', 'docs', 'offer', 'welcome', 'caught-up', 'get', 'has', 'blob', 'chunk', 'end', 'have', 'error', '', 'HELLO', 'hello '])
    case 7: return undefined
    case 8:
    case 9: {
      const n = rng.size(32)
      const out: unknown[] = []
      for (let i = 0; i < n && budget.items > 0; i++) out.push(randomValue(rng, depth + 1, budget))
      return out
    }
    default: {
      const n = rng.size(12)
      const out: Record<string, unknown> = {}
      for (let i = 0; i < n && budget.items > 0; i++) out[rng.bool(0.5) ? rng.pick(FIELD_NAMES) : rng.string(16)] = randomValue(rng, depth + 1, budget)
      return out
    }
  }
}

const FIELD_NAMES = ['t', 'v', 'epoch', 'since', 'live', 'batch', 'items', 'through', 'head', 'from', 'last', 'sha256', 'offset', 'hashes', 'size', 'data', 'code', 'message', '__proto__', 'constructor']

/** A random JSON value (for HTTP bodies). */
export function randomJson (rng: Rng, depth = 0, budget = { items: 300 }): unknown {
  budget.items -= 1
  const leafOnly = depth > 5 || budget.items <= 0
  switch (rng.int(leafOnly ? 5 : 7)) {
    case 0: return null
    case 1: return rng.bool()
    case 2: {
      const n = nastyNumber(rng)
      return typeof n === 'bigint' || !Number.isFinite(n) ? rng.range(-5, 5) : n
    }
    case 3: return rng.string(80)
    case 4: return rng.pick(['', 'admin', 'member', 'dataset', 'model', 'bias', 'xai', 'tag', rng.uuid(), '00000000-0000-0000-0000-000000000000'])
    case 5: {
      const out: unknown[] = []
      const n = rng.size(12)
      for (let i = 0; i < n && budget.items > 0; i++) out.push(randomJson(rng, depth + 1, budget))
      return out
    }
    default: {
      const out: Record<string, unknown> = {}
      const n = rng.size(10)
      for (let i = 0; i < n && budget.items > 0; i++) out[rng.bool(0.6) ? rng.pick(JSON_FIELDS) : rng.string(20)] = randomJson(rng, depth + 1, budget)
      return out
    }
  }
}

export const JSON_FIELDS = [
  'username', 'password', 'role', 'email', 'displayName', 'disabled', 'currentPassword', 'preferences',
  'name', 'description', 'tags', 'metadata', 'owner', 'addTags', 'removeTags', 'framework', 'metrics',
  'reportKind', 'title', 'subject', 'body', 'files', 'kind', 'id', 'versionId', 'note', 'params',
  'multiaddr', 'target', 'value', 'dryRun', 'timeoutMs', '__proto__', 'constructor', 'prototype'
]

/** Writes an unsigned varint. */
export function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 128) { out.push((n % 128) | 128); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

/** Byte-level damage to an encoded message: flips, truncation, insertion, duplication. */
export function mutateBytes (rng: Rng, input: Uint8Array): Uint8Array {
  const bytes = Array.from(input)
  const edits = rng.range(1, 4)
  for (let e = 0; e < edits; e++) {
    const at = rng.int(bytes.length + 1)
    switch (rng.int(5)) {
      case 0: if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)] = rng.int(256); break
      case 1: bytes.length = Math.min(bytes.length, at); break
      case 2: bytes.splice(at, 0, ...rng.bytes(rng.range(1, 8))); break
      case 3: bytes.splice(at, rng.range(1, 8)); break
      default: if (bytes.length > 0) { const i = Math.min(at, bytes.length - 1); bytes[i] = (bytes[i] as number) ^ (1 << rng.int(8)) }
    }
  }
  return Uint8Array.from(bytes)
}

/**
 * Rolling log of the cases a fuzz run executed (name and sub-seed), printed
 * when something fails so the case can be replayed.
 */
export class CaseLog {
  readonly #recent: string[] = []
  readonly counts = new Map<string, number>()
  readonly #keep: number

  constructor (keep = 40) { this.#keep = keep }

  add (name: string, seed: number): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1)
    this.#recent.push(`${name}:${seed}`)
    if (this.#recent.length > this.#keep) this.#recent.shift()
  }

  get total (): number { return [...this.counts.values()].reduce((a, b) => a + b, 0) }
  recent (): string { return this.#recent.join(' ') }
  summary (): string { return [...this.counts].sort().map(([k, v]) => `${k}=${v}`).join(' ') }
}
