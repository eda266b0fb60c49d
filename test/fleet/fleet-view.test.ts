// Verdicts by the thresholds in config.json `fleet`, and the settings
// themselves: a bad value stops the start with CONFIG_INVALID.
import t from 'tap'
import { fleetRows, judge, rowLag } from '../../src/fleet/fleet-view.ts'
import { peerLag } from '../../src/fleet/status-collector.ts'
import { FLEET_DEFAULTS, resolveFleetConfig } from '../../src/fleet/thresholds.ts'
import type { StatusBody } from '../../src/fleet/status-record.ts'

const settings = resolveFleetConfig(undefined)
const NOW = 1_750_000_000_000
const A = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
const B = '12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
const C = '12D3KooWCccccccccccccccccccccccccccccccccccccccccccc'

function body (over: Partial<StatusBody> = {}): StatusBody {
  return {
    name: 'site',
    version: '0.1.0',
    startedAt: NOW - 3_600_000,
    peers: [{ peer: B, connected: true, lagRecords: 0, lagSeconds: 0 }],
    peersTotal: 1,
    records: {},
    blobBytes: 0,
    disk: { free: 500 * 1024 ** 3, total: 1000 * 1024 ** 3 },
    belowTarget: 0,
    lastBackup: null,
    quarantined: 0,
    ready: true,
    ...over
  }
}

const healthy = { ageSeconds: 10, lagSeconds: 0, lagRecords: 0, disk: { free: 500 * 1024 ** 3, total: 1000 * 1024 ** 3 }, belowTarget: 0, quarantined: 0, ready: true, lastBackup: null }

t.test('each threshold: below it healthy, at the warning a warning, at the critical critical', async t => {
  t.same(judge(settings, healthy), { verdict: 'healthy', reasons: [] })
  const cases: Array<[string, object, object, object]> = [
    ['age', { ageSeconds: 3599 }, { ageSeconds: 3600 }, { ageSeconds: 86_400 }],
    ['lag in seconds', { lagSeconds: 3599 }, { lagSeconds: 3600 }, { lagSeconds: 86_400 }],
    ['lag in changes', { lagRecords: 9_999 }, { lagRecords: 10_000 }, { lagRecords: 100_000 }],
    ['free disk', { disk: { free: 51 * 1024 ** 3, total: 1000 * 1024 ** 3 } }, { disk: { free: 49 * 1024 ** 3, total: 1000 * 1024 ** 3 } }, { disk: { free: 9 * 1024 ** 3, total: 1000 * 1024 ** 3 } }]
  ]
  for (const [what, ok, warn, critical] of cases) {
    t.equal(judge(settings, { ...healthy, ...ok }).verdict, 'healthy', `${what}: below the warning`)
    t.equal(judge(settings, { ...healthy, ...warn }).verdict, 'warning', `${what}: warning`)
    t.equal(judge(settings, { ...healthy, ...critical }).verdict, 'critical', `${what}: critical`)
  }
  // On a small disk the byte floors count, not the percentages.
  t.equal(judge(settings, { ...healthy, disk: { free: 900 * 1024 ** 2, total: 8 * 1024 ** 3 } }).verdict, 'warning')
  t.equal(judge(settings, { ...healthy, disk: { free: 200 * 1024 ** 2, total: 8 * 1024 ** 3 } }).verdict, 'critical')
  t.equal(judge(settings, { ...healthy, belowTarget: 1 }).verdict, 'warning', 'a file below its copy target')
  t.equal(judge(settings, { ...healthy, belowTarget: 1e6 }).verdict, 'warning', 'no critical count for files below target by default')
  t.equal(judge(settings, { ...healthy, quarantined: 2 }).verdict, 'warning')
  t.equal(judge(settings, { ...healthy, ready: false, notReady: ['disk full'] }).verdict, 'critical', 'not ready')
  t.equal(judge(settings, { ...healthy, lastBackup: { at: '', ok: false } }).verdict, 'warning', 'last backup failed')
  const worst = judge(settings, { ...healthy, ageSeconds: 90_000, quarantined: 1 })
  t.equal(worst.verdict, 'critical', 'the worst finding wins')
  t.match(worst.reasons, [/not heard from for 25h/, /1 document in quarantine/], 'worst first')
})

t.test('thresholds come from config and null turns one off', async t => {
  const short = resolveFleetConfig({ warnAfter: '2s', criticalAfter: '5s', warnQuarantined: null, criticalBelowTarget: 3 })
  t.equal(judge(short, { ...healthy, ageSeconds: 1 }).verdict, 'healthy')
  t.equal(judge(short, { ...healthy, ageSeconds: 2 }).verdict, 'warning')
  t.equal(judge(short, { ...healthy, ageSeconds: 5 }).verdict, 'critical')
  t.equal(judge(short, { ...healthy, ageSeconds: 0, quarantined: 50 }).verdict, 'healthy', 'quarantine check off')
  t.equal(judge(short, { ...healthy, ageSeconds: 0, belowTarget: 3 }).verdict, 'critical')
  const off = resolveFleetConfig({ warnAfter: null, criticalAfter: null })
  t.equal(judge(off, { ...healthy, ageSeconds: 1e9 }).verdict, 'healthy')
})

t.test('a bad fleet setting is CONFIG_INVALID naming it', async t => {
  for (const [config, pattern] of [
    [{ warnAfter: 'soon' }, /fleet\.warnAfter must be an interval/],
    [{ publishEvery: '0s' }, /fleet\.publishEvery/],
    [{ publishEvery: '2h' }, /at most "1h"/],
    [{ warnLagRecords: 0 }, /fleet\.warnLagRecords must be a whole number of at least 1/],
    [{ warnFreePercent: 120 }, /fleet\.warnFreePercent must be a number from 0 to 100/],
    [{ warnAfter: '2d', criticalAfter: '1d' }, /fleet\.warnAfter must come before fleet\.criticalAfter/],
    [{ warnFreeBytes: 1, criticalFreeBytes: 2 }, /fleet\.warnFreeBytes must come before/],
    [{ warnAftr: '1h' }, /fleet\.warnAftr is not a fleet setting/],
    ['often', /"fleet" must be an object/]
  ] as Array<[any, RegExp]>) {
    t.throws(() => resolveFleetConfig(config), { code: 'CONFIG_INVALID', message: pattern }, JSON.stringify(config))
  }
  t.equal(resolveFleetConfig({}).publishEveryMs, 60_000)
  t.equal(resolveFleetConfig({ publishEvery: FLEET_DEFAULTS.publishEvery }).warnAfterMs, 3_600_000)
})

t.test('rows: every member, this node first; never heard from is critical', async t => {
  const rows = fleetRows({
    self: A,
    members: [{ peerId: A, name: 'alpha', role: 'full' }, { peerId: B, name: '', role: 'full' }, { peerId: C, name: 'charlie', role: 'contributor' }],
    own: body({ name: 'alpha' }),
    held: [{ node: B, seq: NOW - 7_200_000, body: body({ name: 'bravo' }), via: C, receivedAt: NOW - 60_000 }],
    settings,
    now: NOW
  })
  t.same(rows.map(r => [r.name, r.verdict]), [['alpha', 'healthy'], ['bravo', 'warning'], ['charlie', 'critical']])
  const [self, b, c] = rows as [any, any, any]
  t.equal(self.self, true)
  t.equal(self.ageSeconds, 0)
  t.equal(b.ageSeconds, 7200, 'age from when the origin made it')
  t.equal(b.viaName, 'charlie')
  t.equal(b.name, 'bravo', 'the name a node gives itself when the roster has none')
  t.same(c.reasons, ['never heard from'])
  t.equal(c.heard, false)
})

t.test('a status from a clock that runs ahead is never younger than its arrival', async t => {
  const rows = fleetRows({
    self: A,
    members: [{ peerId: B, name: 'b', role: 'full' }],
    own: body(),
    held: [{ node: B, seq: NOW + 3_600_000, body: body(), via: B, receivedAt: NOW - 600_000 }],
    settings,
    now: NOW
  })
  t.equal(rows.find(r => r.peerId === B)?.ageSeconds, 600)
  t.ok(rows.some(r => r.peerId === A && r.role === 'not in a mesh roster'), 'this node is shown even outside a roster')
})

t.test('lag: per link 0 while connected and caught up, else since the last sync; per node its freshest link', async t => {
  t.same(peerLag({ peerId: B, connected: true, behindPeer: 0, lastSyncAt: new Date(NOW - 99_000).toISOString() }, undefined, NOW), { peer: B, connected: true, lagRecords: 0, lagSeconds: 0, lastSyncAt: NOW - 99_000 })
  t.equal(peerLag({ peerId: B, connected: true, behindPeer: 5, lastSyncAt: new Date(NOW - 99_000).toISOString() }, undefined, NOW).lagSeconds, 99, 'behind while connected')
  t.equal(peerLag({ peerId: B, connected: false, behindPeer: 0, lastSyncAt: new Date(NOW - 7_200_000).toISOString() }, 'b', NOW).lagSeconds, 7200, 'disconnected')
  t.equal(peerLag({ peerId: B, connected: false, behindPeer: null }, 'b', NOW).lagSeconds, null, 'never synced')
  t.same(rowLag([
    { peer: B, connected: false, lagRecords: null, lagSeconds: 7200 },
    { peer: C, connected: true, lagRecords: 12, lagSeconds: 30 }
  ]), { lagSeconds: 30, lagRecords: 12 })
  t.same(rowLag([]), { lagSeconds: null, lagRecords: null })
})
