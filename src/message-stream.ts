/**
 * A bidirectional stream of messages: a FramedStream over libp2p in a
 * running node, an in-memory pair in tests. Protocol code (sync, blob
 * transfer) is written against this type, never against libp2p.
 */
export interface MessageStream {
  send: (message: unknown) => Promise<void>
  read: () => Promise<IteratorResult<unknown, undefined>>
  close: () => Promise<void>
  abort: (err: Error) => void
}

/**
 * The first message of a stream a peer opened, or the stream aborted after
 * `ms`: a peer that opens a stream and says nothing must not hold one of the
 * few inbound stream slots for ever.
 */
export async function readFirst (stream: MessageStream, ms: number): Promise<IteratorResult<unknown, undefined>> {
  let timer: NodeJS.Timeout | undefined
  const silence = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`no request within ${ms / 1000} s`)
      stream.abort(err)
      reject(err)
    }, ms)
  })
  silence.catch(() => {})
  try {
    return await Promise.race([stream.read(), silence])
  } finally {
    clearTimeout(timer)
  }
}

/** How long a peer has to send the first message on a stream it opened. */
export const FIRST_MESSAGE_MS = 30_000
