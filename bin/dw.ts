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

const { main } = await import('../src/cli/main.ts')
await main()
