/**
 * A small seeded PRNG (sfc32, seeded through a string hash) so that a seed
 * reproduces a run's schedule and workload. Each consumer forks its own
 * stream by label: adding a draw to the workload never shifts the nemesis.
 */
export class Prng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor (seed: string | number) {
    const h = xmur3(String(seed))
    this.#a = h()
    this.#b = h()
    this.#c = h()
    this.#d = h()
    for (let i = 0; i < 16; i++) this.next()
  }

  /** An independent stream for one consumer. */
  fork (label: string): Prng {
    return new Prng(`${this.#a}:${this.#b}:${this.#c}:${this.#d}:${label}`)
  }

  /** Uniform in [0, 1). */
  next (): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return (t >>> 0) / 4294967296
  }

  /** Integer in [0, n). */
  int (n: number): number {
    return Math.floor(this.next() * n)
  }

  /** Integer in [lo, hi]. */
  between (lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  chance (p: number): boolean {
    return this.next() < p
  }

  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.int(items.length)] as T
  }

  /** A key of `weights` chosen with probability proportional to its weight. */
  weighted<K extends string> (weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((n, [, w]) => n + w, 0)
    let x = this.next() * total
    for (const [k, w] of entries) {
      x -= w
      if (x < 0) return k
    }
    return (entries.at(-1) as [K, number])[0]
  }

  shuffle<T> (items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const tmp = out[i] as T
      out[i] = out[j] as T
      out[j] = tmp
    }
    return out
  }

  /** Deterministic bytes, for file contents. */
  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }

  /** A short lowercase token. */
  word (length = 6): string {
    let s = ''
    for (let i = 0; i < length; i++) s += 'abcdefghijklmnopqrstuvwxyz'[this.int(26)]
    return s
  }
}

function xmur3 (str: string): () => number {
  let h = 1779033703 ^ str.length
  for (let i = 0; i < str.length; i++) {
    h = Math.imul(h ^ str.charCodeAt(i), 3432918353)
    h = (h << 13) | (h >>> 19)
  }
  return () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507)
    h = Math.imul(h ^ (h >>> 13), 3266489909)
    return (h ^= h >>> 16) >>> 0
  }
}
