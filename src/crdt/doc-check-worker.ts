/**
 * Runs in a worker thread (see doc-checker.ts): loads documents a peer sent
 * and measures them, so a hostile document blocks this thread and grows
 * this thread's memory, never the node's event loop; the node terminates
 * this thread when a document takes too long or too much.
 */
import { parentPort } from 'node:worker_threads'
import * as A from '@automerge/automerge'
import type { CheckItem, CheckJob, CheckReply, CheckVerdict } from './doc-checker.ts'
import { prepareStates } from './prepared-states.ts'

/** Not in the TypeScript lib this project compiles against, but always there in Node. */
const { RuntimeError } = (globalThis as unknown as { WebAssembly: { RuntimeError: new () => Error } }).WebAssembly

/**
 * The most operations the states prepared for one job may hold in all (a
 * state per change, each counted at the document's full size): a batch of
 * 256 ordinary records (~550 operations, one or two changes each) fits;
 * a peer's documents built to be large cost the node no more than this
 * (tens of MiB), the rest being loaded by the node one at a time as before.
 */
const PREPARED_OPS_PER_JOB = 400_000

/** This thread never makes a change: one actor id for every load spares drawing a random one each time. */
const ACTOR = '00'.repeat(16)

const port = parentPort
if (port === null) throw new Error('doc-check-worker runs only as a worker thread')

// Loading the engine, and its first calls, take a while on a busy machine:
// done before the node's clock for a document starts.
A.free(A.load(A.save(A.from({ warm: [1] }))))
port.postMessage({ ready: true })

port.on('message', (job: CheckJob) => {
  // What the node will hold of this job's prepared states, in operations: bounded whatever a peer sends.
  const budget = { ops: PREPARED_OPS_PER_JOB }
  for (const [i, item] of job.items.entries()) {
    const verdict = inspect(item, job.limits, budget)
    const reply: CheckReply = { id: job.id, i, verdict }
    port.postMessage(reply)
    // After a trap the engine in this thread is not to be trusted: the node starts a fresh one.
    if (verdict.ok === false && verdict.fatal === true) process.exit(1)
  }
})

function inspect (item: CheckItem, limits: CheckJob['limits'], budget: { ops: number }): CheckVerdict {
  let doc: A.Doc<any>
  let base: A.Doc<any> | undefined
  let since: string[] = []
  let patches: A.Patch[] | undefined
  try {
    if (item.base === undefined) {
      // Changes whose dependencies have not arrived are parked by the node, as a merge into a document it holds leaves them pending.
      doc = A.load(item.bytes, { allowMissingChanges: true, actor: ACTOR })
    } else {
      base = A.load(item.base, { actor: ACTOR })
      since = A.getHeads(base)
      doc = A.loadIncremental(base, item.bytes, { patchCallback: p => { patches = p } })
      patches ??= []
    }
  } catch (err) {
    return failure(err)
  }
  try {
    const { numOps } = A.stats(doc)
    if (numOps > limits.maxOps) return { ok: false, quarantine: true, reason: `it holds ${numOps} operations, more than the limit of ${limits.maxOps}` }
    const depth = depthOf(doc, limits.maxDepth)
    if (depth > limits.maxDepth) return { ok: false, quarantine: true, reason: `it nests more than ${limits.maxDepth} levels deep` }
    const verdict: CheckVerdict = { ok: true }
    const prepared = item.prepare === true ? prepareStates(doc, base, since, patches, { numOps, maxOps: budget.ops }) : undefined
    if (prepared !== undefined) {
      verdict.prepared = prepared
      budget.ops -= prepared.ops
    }
    return verdict
  } catch (err) {
    return failure(err)
  } finally {
    A.free(doc)
  }
}

/** A parse error is the peer's bad message; a trap or a failed allocation is a document that broke the engine. */
function failure (err: unknown): CheckVerdict {
  const message = err instanceof Error ? err.message : String(err)
  if (err instanceof RuntimeError) {
    return { ok: false, quarantine: true, fatal: true, reason: `loading it broke the Automerge engine (${message})` }
  }
  return { ok: false, quarantine: false, reason: `Automerge cannot decode it (${message})` }
}

/** The deepest nesting of maps and lists, walked without recursion; stops counting past `limit`. */
function depthOf (doc: unknown, limit: number): number {
  let deepest = 0
  const stack: Array<[unknown, number]> = [[doc, 0]]
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number]
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array || value instanceof Date) continue
    deepest = Math.max(deepest, depth)
    if (deepest > limit) return deepest
    for (const child of Object.values(value)) stack.push([child, depth + 1])
  }
  return deepest
}
