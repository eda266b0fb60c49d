#!/usr/bin/env node
import { mkdirSync } from 'node:fs'
import { enableCompileCache } from 'node:module'
import { homedir } from 'node:os'
import { join } from 'node:path'

// Every dw command compiles (and strips the types of) the same files; Node
// can keep the result, which halves how long a command takes to start. The
// cache lives in the user's own directory, never a shared one such as /tmp,
// where another user could plant code for this one to run. Without a
// writable home, commands simply start without it.
try {
  const dir = join(homedir(), '.cache', 'dw-mesh', 'compile-cache')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  enableCompileCache(dir)
} catch {}

// A running node starts its process again with the memory settings that
// only apply at start-up (src/start/process-memory.ts): execve keeps the
// process id, so a supervisor and its signals see one process throughout.
if (process.argv[2] === 'start' && typeof process.execve === 'function') {
  const { memoryRelaunch } = await import('../src/start/process-memory.ts')
  const relaunch = memoryRelaunch(process.execArgv, process.env)
  if (relaunch !== undefined) {
    try {
      process.execve(process.execPath, [process.execPath, ...relaunch.flags, ...process.execArgv, ...process.argv.slice(1)], { ...process.env, ...relaunch.env })
    } catch {}
  }
}

const { main } = await import('../src/cli/main.ts')
await main()
