/**
 * A small least-recently-used map. The document store keeps few Automerge
 * documents alive: each live document costs wasm memory, and with thousands
 * alive every new one gets slower (see the brief's measurements).
 */
/** A method, not a function-typed field: it keeps a cache of `V` usable where a cache of a wider `V` is expected. */
export interface Evictions<K, V> { evicted (key: K, value: V): void }

export class Lru<K, V> {
  readonly #max: number
  readonly #map = new Map<K, V>()
  readonly #onEvict: Evictions<K, V> | undefined

  /** `onEvict` hears of each entry pushed out to make room (not of `delete`, `clear` or a `set` that replaces). */
  constructor (max: number, onEvict?: Evictions<K, V>) {
    this.#max = Math.max(1, max)
    this.#onEvict = onEvict
  }

  get size (): number { return this.#map.size }

  get (key: K): V | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }

  set (key: K, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, value)
    while (this.#map.size > this.#max) {
      const [oldest, evicted] = this.#map.entries().next().value as [K, V]
      this.#map.delete(oldest)
      this.#onEvict?.evicted(oldest, evicted)
    }
  }

  /** The value without marking it used. */
  peek (key: K): V | undefined {
    return this.#map.get(key)
  }

  delete (key: K): void {
    this.#map.delete(key)
  }

  clear (): void {
    this.#map.clear()
  }
}
