// `dw start` re-executes itself once with the memory settings that only
// apply at process start; an operator's own flag or variable wins.
import t from 'tap'
import { memoryRelaunch, NODE_MEMORY_ENV, NODE_MEMORY_FLAGS, RELAUNCHED_ENV } from '../../src/start/process-memory.ts'

t.test('a plain process gets every flag and variable, and is marked as relaunched', async t => {
  const relaunch = memoryRelaunch([], {})
  t.same(relaunch?.flags, [...NODE_MEMORY_FLAGS])
  t.same(relaunch?.env, { ...NODE_MEMORY_ENV, [RELAUNCHED_ENV]: '1' })
})

t.test('a relaunched process is not relaunched again', async t => {
  t.equal(memoryRelaunch([], { [RELAUNCHED_ENV]: '1' }), undefined)
})

t.test('flags and variables the operator set are left as they are', async t => {
  const name = (NODE_MEMORY_FLAGS[0] as string).split('=')[0] as string
  const fromArgv = memoryRelaunch([`${name}=64`], {})
  t.notOk(fromArgv?.flags.some(f => f.startsWith(name)), 'a flag on the command line wins')
  const fromOptions = memoryRelaunch([], { NODE_OPTIONS: `--enable-source-maps --${name.slice(2).replace(/-/g, '_')}=64` })
  t.notOk(fromOptions?.flags.some(f => f.startsWith(name)), 'a flag in NODE_OPTIONS wins, spelt with dashes or underscores')
  const env = Object.fromEntries(Object.keys(NODE_MEMORY_ENV).map(k => [k, 'mine']))
  const all = memoryRelaunch(NODE_MEMORY_FLAGS.map(f => f.split('=')[0] + '=1'), env)
  t.equal(all, undefined, 'nothing left to set: no relaunch')
})
