/**
 * Process-wide memory settings for a running node (`dw start`), which only
 * take effect when the process starts: V8 sizes its heap at start-up and
 * glibc reads its tunables once. `dw start` re-executes itself with them
 * (bin/dw.ts); scripts that measure a node start its process the same way.
 *
 * Measured in scripts/sync-memory.ts (issue 11: a node under 250 MB after
 * an initial sync of 100,000 records, and after 10,000 creates):
 *
 * - `--max-semi-space-size`: V8 grows the young generation to 32 MiB a
 *   semi-space under load (sync and the API allocate fast) and, once it
 *   shrinks again, keeps the freed pages pooled: ~130 MiB of resident
 *   memory that no heap statistic shows. A small young generation costs
 *   more scavenges: +5% on an initial sync, +15% CPU on creates through the
 *   API (8 MiB cost +9% and kept 20 MiB more).
 * - `MALLOC_ARENA_MAX`: glibc gives each thread that mallocs (libuv's pool,
 *   LevelDB's compaction, V8's helpers, the document checker) an arena of
 *   its own, each keeping what it once held.
 *
 * An operator's own choice wins: a flag already on the command line or in
 * NODE_OPTIONS, or an environment variable already set, is left alone.
 */
export const NODE_MEMORY_FLAGS: readonly string[] = ['--max-semi-space-size=2']

export const NODE_MEMORY_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }

/** Set in the re-executed process, so that it does not re-execute again. */
export const RELAUNCHED_ENV = 'DW_MEMORY_OPTIONS'

export interface Relaunch { flags: string[], env: Record<string, string> }

function flagName (flag: string): string {
  return flag.split('=')[0]?.replace(/_/g, '-') ?? flag
}

/**
 * The flags and environment a node's process should start with, beyond
 * what it already has; undefined when it has them all (or was already
 * relaunched).
 */
export function memoryRelaunch (execArgv: readonly string[], env: NodeJS.ProcessEnv): Relaunch | undefined {
  if (env[RELAUNCHED_ENV] !== undefined) return undefined
  const given = new Set([...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].filter(f => f.startsWith('--')).map(flagName))
  const flags = NODE_MEMORY_FLAGS.filter(f => !given.has(flagName(f)))
  const extra: Record<string, string> = {}
  for (const [k, v] of Object.entries(NODE_MEMORY_ENV)) if (env[k] === undefined) extra[k] = v
  if (flags.length === 0 && Object.keys(extra).length === 0) return undefined
  return { flags, env: { ...extra, [RELAUNCHED_ENV]: '1' } }
}
