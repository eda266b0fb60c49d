import type { MessageStream } from '../../src/message-stream.ts'

/**
 * Two connected in-memory message streams. Messages are passed through a
 * structured clone, as a real wire would copy them.
 */
export function streamPair (): [MessageStream & { bytes: () => number }, MessageStream & { bytes: () => number }] {
  const make = (): { queue: unknown[], waiters: Array<() => void>, ended: boolean, error: Error | undefined } => ({ queue: [], waiters: [], ended: false, error: undefined })
  const a = make()
  const b = make()
  const side = (inbox: ReturnType<typeof make>, outbox: ReturnType<typeof make>): MessageStream & { bytes: () => number } => {
    let sent = 0
    const wakeAll = (box: ReturnType<typeof make>): void => { for (const w of box.waiters.splice(0)) w() }
    return {
      bytes: () => sent,
      async send (message) {
        if (outbox.ended || outbox.error !== undefined) throw new Error('stream closed')
        sent += JSON.stringify(message, (_k, v) => v instanceof Uint8Array ? v.length : v).length
        outbox.queue.push(structuredClone(message))
        wakeAll(outbox)
      },
      async read () {
        while (true) {
          if (inbox.queue.length > 0) return { done: false, value: inbox.queue.shift() }
          if (inbox.error !== undefined) throw inbox.error
          if (inbox.ended) return { done: true, value: undefined }
          await new Promise<void>(resolve => inbox.waiters.push(resolve))
        }
      },
      async close () { outbox.ended = true; wakeAll(outbox) },
      abort (err) { inbox.error = err; outbox.error = err; wakeAll(inbox); wakeAll(outbox) }
    }
  }
  return [side(a, b), side(b, a)]
}
