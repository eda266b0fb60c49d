// A short seeded partition simulation: 3 real node processes behind
// fault-injecting proxies, ~300 operations, 6 faults including a SIGKILL,
// then the checker. Everything it starts is stopped and removed.
import t from 'tap'
import { renderReport } from '../../scripts/sim/report.ts'
import { simulate } from '../../scripts/sim/run.ts'
import { Prng } from '../../scripts/sim/prng.ts'
import { planNemesis } from '../../scripts/sim/nemesis.ts'
import { planWorkload } from '../../scripts/sim/workload.ts'

t.test('the same seed gives the same schedule and workload', async t => {
  const plan = (seed: string): string => JSON.stringify([
    planNemesis(new Prng(seed).fork('nemesis'), { nodes: 3, faults: 6, stepMs: [800, 1500] }),
    planWorkload(new Prng(seed).fork('workload'), { ops: 300, nodes: 3, hot: 3, seed })
  ])
  t.equal(plan('7'), plan('7'))
  t.not(plan('7'), plan('8'))
  const steps = planNemesis(new Prng('7').fork('nemesis'), { nodes: 3, faults: 6, stepMs: [800, 1500] })
  t.ok(steps.some(s => s.fault.kind === 'kill'), 'the schedule kills a node')
  const restoring = planNemesis(new Prng('7').fork('nemesis'), { nodes: 3, faults: 6, restore: true, stepMs: [800, 1500] })
  t.same(restoring.filter(s => s.fault.kind === 'restore').map(s => s.index), [4], '--restore: one restore step, two thirds in, not the last')
})

t.test('a short seeded simulation passes the checker', { timeout: 150_000 }, async t => {
  const started = Date.now()
  const report = await simulate({ nodes: 3, ops: 300, faults: 6, seed: '7', stepMs: [800, 1500], convergeTimeoutMs: 60_000, fileTimeoutMs: 30_000 })
  const text = renderReport(report, { timeline: true })
  t.comment(text)
  t.equal(report.error, undefined, 'the run completed')
  t.ok((report.nemesis.counts.kill ?? 0) >= 1, 'a node was killed and restarted')
  t.ok(report.workload.acked > 150, `writes acknowledged (${report.workload.acked})`)
  t.same(report.check?.violations ?? ['no check'], [], 'no violation')
  t.ok(report.check?.identicalAfterMs !== null, 'converged')
  t.ok(report.ok, 'checker passes')
  t.comment(`took ${((Date.now() - started) / 1000).toFixed(0)} s`)
})
