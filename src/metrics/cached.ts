/**
 * `read`'s last result until it is `maxAgeMs` old; callers meanwhile share
 * one read. For figures that cost a pass over a store (document and blob
 * counts): a scrape every few seconds must not cost that pass each time.
 * A failed read is not kept, so the next call tries again.
 */
export function cached<T> (read: () => Promise<T>, maxAgeMs: number, now: () => number = Date.now): () => Promise<T> {
  let last: { at: number, value: Promise<T> } | undefined
  return async () => {
    if (last === undefined || now() - last.at >= maxAgeMs) {
      const entry = { at: now(), value: read() }
      last = entry
      entry.value.catch(() => { if (last === entry) last = undefined })
    }
    return await last.value
  }
}
