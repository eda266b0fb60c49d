import t from 'tap'
import { QuotaLedger, resolveSyncQuotas, DEFAULT_SYNC_QUOTAS } from '../../src/peer/sync/quota.ts'

const limits = {
  perSession: { documents: 10, newDocuments: 5, bytes: 1000 },
  perHour: { documents: 25, newDocuments: 100, bytes: 10_000 }
}

t.test('a session past its quota ends; the next session starts afresh', async t => {
  const ledger = new QuotaLedger(limits, () => 0)
  const charge = ledger.session('p')
  charge({ documents: 10, bytes: 500 })
  t.throws(() => { charge({ documents: 1 }) }, { code: 'TOO_MANY_ATTEMPTS', message: /per-session quota of 10 documents/ })
  t.match(ledger.throttled('p'), { reason: /per-session/, until: undefined })
  const next = ledger.session('p')
  t.equal(ledger.throttled('p'), undefined, 'a new session clears a per-session throttle')
  next({ newDocuments: 5 })
  t.throws(() => { next({ newDocuments: 1 }) }, { message: /5 new documents/ })
  t.equal(ledger.throttled('q'), undefined, 'other peers are not affected')
})

t.test('a peer past its hourly quota waits for its window to end', async t => {
  let now = 1_000
  const ledger = new QuotaLedger(limits, () => now)
  for (let i = 0; i < 2; i++) ledger.session('p')({ documents: 10 })
  t.throws(() => { ledger.session('p')({ documents: 10 }) }, { message: /hourly quota of 25 documents/ })
  t.match(ledger.throttled('p'), { until: 1_000 + 3_600_000 })
  ledger.session('p')
  t.ok(ledger.throttled('p') !== undefined, 'a new session does not lift an hourly throttle')
  now += 3_600_000
  t.equal(ledger.throttled('p'), undefined, 'lifted when the window ends')
  t.doesNotThrow(() => { ledger.session('p')({ documents: 10 }) }, 'a fresh window')
})

t.test('configured quotas are checked', async t => {
  t.same(resolveSyncQuotas(undefined), DEFAULT_SYNC_QUOTAS)
  t.equal(resolveSyncQuotas({ perHour: { bytes: 5 } }).perHour.bytes, 5)
  t.equal(resolveSyncQuotas({ perHour: { bytes: 5 } }).perSession.bytes, DEFAULT_SYNC_QUOTAS.perSession.bytes)
  t.throws(() => resolveSyncQuotas({ perHour: { bytes: 0 } }), /positive integer/)
  t.throws(() => resolveSyncQuotas({ perHour: { records: 5 } as any }), /not a quota/)
})
