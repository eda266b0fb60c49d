// Which of the bugs the fuzz tests found are fixed (issue 5, item 5): shared
// by the deterministic reproducers in bugs.test.ts and blob-bugs.test.ts.
// An assertion that shows a known, unfixed bug carries `todo: 'BUG-n ...'`,
// so the suite stays green until the fix lands (tap reports it as todo, not
// as a pass). Add the bug here when fixing; FUZZ_STRICT=1 makes every one
// count as a failure.
import { createHash } from 'node:crypto'

const STRICT = process.env.FUZZ_STRICT === '1'
/** Bugs fixed since the fuzzer found them: their assertions count for real. */
const FIXED = new Set(['BUG-1', 'BUG-2', 'BUG-3', 'BUG-4', 'BUG-5', 'BUG-6', 'BUG-7', 'BUG-8', 'BUG-9', 'BUG-10', 'BUG-11'])
/** Extra for assertions that show a known, unfixed bug: todo unless FUZZ_STRICT=1. */
export const known = (bug: string): { todo?: string } => STRICT || FIXED.has(bug.slice(0, bug.indexOf(':'))) ? {} : { todo: bug }
export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
