/**
 * Waiting that an AbortSignal can cut short: one place for the three shapes
 * the node needs (an iterable, a promise, a pause).
 */

/**
 * Iterates `source` until `signal` aborts, then throws `signal.reason` at
 * once, even while the source is stuck awaiting (a stalled peer). Needed
 * because `for await` and stream.pipeline only stop an async generator by
 * calling `return()`, which a generator suspended in an `await` never
 * answers: the put would hang and keep its temp file.
 */
export async function * abortableIterable<T> (source: AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T> {
  if (signal === undefined) {
    yield * source
    return
  }
  signal.throwIfAborted()
  const iterator = source[Symbol.asyncIterator]()
  const { promise: aborted, reject } = Promise.withResolvers<never>()
  aborted.catch(() => {})
  const onAbort = (): void => { reject(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  let sourceOpen = true
  try {
    while (true) {
      const next = iterator.next().then(
        (result) => {
          if (result.done === true) sourceOpen = false
          return result
        },
        (err: unknown) => {
          sourceOpen = false
          throw err
        })
      // The losing side of the race may still reject later; it must not surface as unhandled.
      next.catch(() => {})
      const result = await Promise.race([next, aborted])
      if (result.done === true) return
      yield result.value
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    if (sourceOpen) {
      // Awaiting return() would hang on a stalled source; it can clean up whenever it wakes.
      const closing = iterator.return?.()
      if (signal.aborted) closing?.catch(() => {})
      else await closing
    }
  }
}

/** `promise`, or the signal's reason if it aborts first. */
export async function abortable<T> (promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await promise
  signal.throwIfAborted()
  const { promise: aborted, reject } = Promise.withResolvers<never>()
  const onAbort = (): void => { reject(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/** Waits `ms`, or less if the signal aborts (it then resolves: a pause is never an error). */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return
  await new Promise<void>(resolve => {
    const done = (): void => { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve() }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}
