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
