/**
 * A small least-recently-used map. The document store keeps few Automerge
 * documents alive: each live document costs wasm memory, and with thousands
 * alive every new one gets slower (see the brief's measurements).
 */
export class Lru<K, V> {
  readonly #max: number
  readonly #map = new Map<K, V>()
  readonly #onEvict: ((key: K, value: V) => void) | undefined

  constructor (max: number, onEvict?: (key: K, value: V) => void) {
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
      const oldest = this.#map.keys().next().value as K
      const evicted = this.#map.get(oldest) as V
      this.#map.delete(oldest)
      this.#onEvict?.(oldest, evicted)
    }
  }

  delete (key: K): void {
    this.#map.delete(key)
  }

  clear (): void {
    this.#map.clear()
  }
}
