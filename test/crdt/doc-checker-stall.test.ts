// The checker's time limit is the worker's CPU time. A node stopped (SIGSTOP,
// a suspended VM) or starved mid-load used to quarantine the honest document
// it was loading for good, once the clock ran past the limit: a partition
// simulation lost a delete that way after a 23 s SIGSTOP. The child stops
// itself once its load is under way (no race with this process), and this
// process resumes it after longer than the limit.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const CHILD = fileURLToPath(new URL('../fixtures/check-large-doc.ts', import.meta.url))
const LIMIT_MS = 3000
const STOP_MS = 4500

t.test('a node stopped for longer than the limit while loading a document still admits it', async t => {
  const child = spawn(process.execPath, [CHILD], { env: { ...process.env, LIMIT_MS: String(LIMIT_MS) }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  let resuming = false
  const result = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      // The child stops itself mid-load; it stays stopped for longer than the limit.
      if (!resuming && out.includes('stopping\n')) {
        resuming = true
        setTimeout(() => { child.kill('SIGCONT') }, STOP_MS)
      }
      const line = out.split('\n').find(l => l.startsWith('{'))
      if (line !== undefined) resolve(line)
    })
    child.once('exit', code => { reject(new Error(`the child exited (${code}) before its verdict: ${out}`)) })
  })
  const { verdict, ms } = JSON.parse(result) as { verdict: { ok: boolean, reason?: string }, ms: number }
  t.ok(ms >= STOP_MS, `the check spanned the stop (${ms} ms by the clock)`)
  t.same(verdict, { ok: true }, 'the document was admitted, not quarantined')
})
