// The partition simulator in --netns mode: every node in its own network
// namespace, partitions as silent nft drops, slow and lossy links by tc and
// nft. Needs root and the ip, tc and nft commands; skipped (with the
// reason) without them. The fault mapping is checked everywhere.
import { spawn } from 'node:child_process'
import { readFileSync, readlinkSync } from 'node:fs'
import { connect } from 'node:net'
import t from 'tap'
import { sleep } from '../../scripts/sim/client.ts'
import { listLinks, listNamespaces, overlaps } from '../../scripts/sim/netns-host.ts'
import { NetnsNetwork } from '../../scripts/sim/netns-network.ts'
import { netnsPreflight, preflightMessage, type NetnsTools } from '../../scripts/sim/netns-preflight.ts'
import { delayAsThrottleBps, linkShape, lossPercent, nftRules } from '../../scripts/sim/netns-rules.ts'
import { renderReport } from '../../scripts/sim/report.ts'
import { simulate } from '../../scripts/sim/run.ts'
import { sh } from '../../scripts/sim/shell.ts'

const preflight = netnsPreflight()
const skip = preflight.ok ? false : preflightMessage(preflight.problems).replace(/\n/g, ' ')

/** What this process created and has not removed: namespaces `dwsim-<pid>-*`, root links `dws<pid>-*`. */
async function leftovers (tools: NetnsTools): Promise<string[]> {
  const namespaces = (await listNamespaces(tools)).filter(ns => ns.startsWith(`dwsim-${process.pid}-`))
  const links = (await listLinks(tools)).filter(link => link.startsWith(`dws${process.pid}-`))
  return [...namespaces, ...links]
}

/** From inside node `from`'s namespace, how a TCP connect to `host:port` ends. */
async function probe (network: NetnsNetwork, from: number, host: string, port: number): Promise<string> {
  const script = `const s = require('node:net').connect({ host: '${host}', port: ${port}, timeout: 1500 });
    s.on('connect', () => { console.log('connected'); s.destroy() });
    s.on('error', e => { console.log(e.code) });
    s.on('timeout', () => { console.log('timeout'); s.destroy() })`
  const [command = '', ...args] = [...network.commandPrefix(from), process.execPath, '-e', script]
  return (await sh(command, args)).trim()
}

t.test('faults map to packet loss and rates, and never name the control address', async t => {
  t.equal(lossPercent(0.2), 1)
  t.equal(lossPercent(2), 10)
  t.equal(delayAsThrottleBps(20), 819_200, 'a 16 KiB burst takes the delay to leave')
  t.equal(delayAsThrottleBps(400), 40_960)
  t.same(linkShape({ delayMs: 100 }, false), { rateBps: 163_840, netemDelayMs: undefined, lossPercent: undefined }, 'without netem a delay is a throttle')
  t.same(linkShape({ delayMs: 100 }, true), { rateBps: undefined, netemDelayMs: 100, lossPercent: undefined }, 'with netem a delay is a delay')
  t.same(linkShape({ throttleBps: 4096, delayMs: 400 }, false).rateBps, 4096, 'the slower of throttle and delay wins')
  const rules = nftRules(['10.9.9.2', '10.9.9.3'], [{ ip: '10.9.9.4', percent: 5 }])
  t.match(rules, /^flush chain inet dwsim input\nflush chain inet dwsim output\n/, 'a rebuild starts by flushing, in the same transaction')
  t.match(rules, 'input ip saddr { 10.9.9.2, 10.9.9.3 } counter name cut drop')
  t.match(rules, 'output ip daddr { 10.9.9.2, 10.9.9.3 } counter name cut drop')
  t.match(rules, 'output ip daddr 10.9.9.4 numgen random mod 100 < 5 counter name loss drop')
  t.notMatch(rules, '.254', 'the control address is never cut')
  t.ok(overlaps('10.1.2.0/24', '10.0.0.0/8'))
  t.notOk(overlaps('10.1.2.0/24', '10.1.3.0/24'))
  t.ok(overlaps('10.1.2.0/24', '10.1.2.7'))
  const message = preflightMessage(['`nft` is not installed (Debian package nftables)'])
  t.match(message, 'apt-get install nftables iproute2', 'a missing tool comes with how to install it')
})

t.test('a namespace network: silent partitions, signals reach the node, nothing left behind', { skip, timeout: 60_000 }, async t => {
  if (!preflight.ok) return
  const tools = preflight.tools
  const network = new NetnsNetwork(tools, line => { t.comment(line) })
  t.teardown(() => { network.destroyNow() })
  await network.setUp(2)
  const b = network.ip(1)
  t.equal(await probe(network, 0, b, 4001), 'ECONNREFUSED', 'node 1 answers node 0 (nothing listens: a RST)')

  await network.setTopology(() => false)
  t.equal(await probe(network, 0, b, 4001), 'timeout', 'partitioned: the SYN vanishes, no RST, no ICMP')
  t.equal(await probe(network, 1, network.ip(0), 4001), 'timeout', 'both ways')
  const stats = await network.stats()
  t.ok(stats.cutPackets > 0, `the drops are counted (${stats.cutPackets} packets)`)

  // The simulator's own address is never cut: a process in the root
  // namespace still reaches node 0 during the partition.
  const fromRoot = await new Promise<string>(resolve => {
    const s = connect({ host: network.ip(0), port: 4001, timeout: 1500 })
    s.on('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? e.message) })
    s.on('timeout', () => { s.destroy(); resolve('timeout') })
  })
  t.equal(fromRoot, 'ECONNREFUSED', 'the control path stays open')

  await network.setTopology(() => true)
  t.equal(await probe(network, 0, b, 4001), 'ECONNREFUSED', 'healed')

  // `ip netns exec` execs: the child pid is the command itself, inside the namespace.
  const [command = '', ...args] = [...network.commandPrefix(1), 'sleep', '30']
  const child = spawn(command, args, { stdio: 'ignore' })
  const exited = new Promise<string | null>(resolve => { child.on('exit', (_code, signal) => { resolve(signal) }) })
  await sleep(300)
  const pid = child.pid as number
  t.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'sleep', 'the child pid is the command, not a wrapper')
  t.not(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync('/proc/self/ns/net'), 'in its own network namespace')
  child.kill('SIGSTOP')
  await sleep(100)
  t.match(readFileSync(`/proc/${pid}/stat`, 'utf8'), /^\d+ \(sleep\) T /, 'SIGSTOP stops it')
  child.kill('SIGKILL')
  t.equal(await exited, 'SIGKILL', 'SIGKILL kills it')

  await network.close()
  t.same(await leftovers(tools), [], 'no namespace or root link left')
})

t.test('a short seeded simulation in network namespaces passes the checker', { skip, timeout: 150_000 }, async t => {
  if (!preflight.ok) return
  const started = Date.now()
  // With a restore from a backup mid-run: the restored node must get back what it lost, and its new writes must spread.
  const report = await simulate({ nodes: 3, ops: 300, faults: 6, seed: '7', network: 'netns', restore: true, stepMs: [800, 1500], convergeTimeoutMs: 60_000, fileTimeoutMs: 30_000 })
  t.comment(renderReport(report, { timeline: true }))
  t.equal(report.error, undefined, 'the run completed')
  t.equal(report.network, 'netns', 'the report says which network ran')
  const counts = report.nemesis.counts
  t.ok((counts.kill ?? 0) >= 1, 'a node was killed and restarted')
  t.equal(counts.restore, 1, 'a restore step ran')
  t.ok(report.nemesis.timeline.some(e => /restored from its backup and started/.test(e.action)), 'a node was restored from its backup')
  t.ok((counts.halves ?? 0) + (counts.isolate ?? 0) + (counts.bridge ?? 0) + (counts.ring ?? 0) >= 1, 'the network was partitioned')
  const net = report.nemesis.network
  t.ok(net?.mode === 'netns' && net.cutPackets > 0, 'the partition dropped packets')
  t.ok(report.workload.acked > 150, `writes acknowledged (${report.workload.acked})`)
  t.same(report.check?.violations ?? ['no check'], [], 'no violation')
  t.ok(report.check?.identicalAfterMs !== null, 'converged')
  t.ok(report.ok, 'checker passes')
  t.same(await leftovers(preflight.tools), [], 'no namespace or root link of the run is left')
  t.comment(`took ${((Date.now() - started) / 1000).toFixed(0)} s`)
})
