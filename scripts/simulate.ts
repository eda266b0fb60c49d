#!/usr/bin/env node
// Partition simulator: N real dw nodes in a full mesh through fault-injecting
// TCP proxies (or, with --netns, each in its own network namespace, cut by
// nftables and shaped by tc), a seeded workload over their HTTP APIs, a
// seeded nemesis (partitions, SIGKILL, SIGSTOP, slow and lossy links), then a
// checker that reads every node and holds the result to the replication
// contract. See docs/partition-testing.md.
import { rmSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { netnsPreflight, preflightMessage } from './sim/netns-preflight.ts'
import { renderReport } from './sim/report.ts'
import { simulate, type Running } from './sim/run.ts'

const USAGE = `usage: node scripts/simulate.ts [--nodes 5] [--ops 2000] [--faults 30] [--seed 42]
  [--concurrency 6] [--hot 3] [--step-ms 1000-3500] [--converge-timeout 180]
  [--netns] [--inject lose-record] [--restore] [--report out.json] [--timeline] [--keep|--keep-on-failure] [--quiet]`

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5' },
    ops: { type: 'string', default: '2000' },
    faults: { type: 'string', default: '30' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    concurrency: { type: 'string', default: '6' },
    hot: { type: 'string', default: '3' },
    'step-ms': { type: 'string', default: '1000-3500' },
    'converge-timeout': { type: 'string', default: '180' },
    netns: { type: 'boolean', default: false },
    inject: { type: 'string' },
    restore: { type: 'boolean', default: false },
    report: { type: 'string' },
    timeline: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'keep-on-failure': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})

if (values.help) {
  process.stdout.write(USAGE + '\n')
  process.exit(0)
}

function int (name: string, value: string, min: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} wants an integer >= ${min}, got ${value}\n${USAGE}\n`)
    process.exit(2)
  }
  return n
}

const nodes = int('nodes', values.nodes, 2)
const ops = int('ops', values.ops, 0)
const faults = int('faults', values.faults, 0)
const [lo, hi] = values['step-ms'].split('-').map(Number)
if (values.inject !== undefined && values.inject !== 'lose-record') {
  process.stderr.write(`--inject knows only "lose-record"\n`)
  process.exit(2)
}
if (values.netns) {
  const preflight = netnsPreflight()
  if (!preflight.ok) {
    process.stderr.write(preflightMessage(preflight.problems) + '\n')
    process.exit(2)
  }
}
const started = Date.now()
const log = values.quiet ? () => {} : (line: string) => { process.stderr.write(`[sim +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`) }

const controller = new AbortController()
const running: Running = { keep: false }
let interrupts = 0
const onSignal = (signal: string): void => {
  interrupts += 1
  if (interrupts === 1) {
    process.stderr.write(`\n${signal}: stopping the nodes and removing temp data (again to force)\n`)
    controller.abort(new Error(signal))
    return
  }
  running.cluster?.killAllNow()
  if (running.root !== undefined && !running.keep) rmSync(running.root, { recursive: true, force: true })
  process.exit(130)
}
process.on('SIGINT', () => { onSignal('SIGINT') })
process.on('SIGTERM', () => { onSignal('SIGTERM') })
process.on('exit', () => {
  // Last resort: nothing may outlive the simulator (processes, namespaces, veths).
  running.cluster?.killAllNow()
  if (running.root !== undefined && !running.keep) rmSync(running.root, { recursive: true, force: true })
})

const report = await simulate({
  nodes,
  ops,
  faults,
  seed: values.seed,
  concurrency: int('concurrency', values.concurrency, 1),
  hot: int('hot', values.hot, 1),
  stepMs: [lo ?? 1000, hi ?? lo ?? 3500],
  convergeTimeoutMs: int('converge-timeout', values['converge-timeout'], 1) * 1000,
  inject: values.inject as 'lose-record' | undefined,
  restore: values.restore,
  network: values.netns ? 'netns' : 'proxy',
  keep: values.keep ? 'always' : values['keep-on-failure'] ? 'failure' : 'never',
  log,
  signal: controller.signal
}, running)

if (values.report !== undefined) await writeFile(values.report, JSON.stringify(report, null, 2) + '\n')
process.stdout.write(renderReport(report, { timeline: values.timeline }) + '\n')
process.exit(report.ok ? 0 : 1)
