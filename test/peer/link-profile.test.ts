import { generateKeyPair } from '@libp2p/crypto/keys'
import t from 'tap'
import type { Stream } from '@libp2p/interface'
import { decode as cborDecode } from 'cborg'
import { jsonSublevel, openDb } from '../../src/db.ts'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { peerIdOf } from '../../src/peer/identity.ts'
import { backgroundRefusal, formatLink, formatRate, inWindow, isThinLink, parseRate, parseWindow, patchLink } from '../../src/peer/link-profile.ts'
import { LinkRates } from '../../src/peer/link-rates.ts'
import { PeerBook, type PeerEntry, type PendingPeer } from '../../src/peer/peer-book.ts'
import { tempDir } from '../helpers/tmp.ts'

/** Local time on a fixed day: the rule reads the wall clock where the node runs. */
const at = (hh: number, mm: number): Date => new Date(2025, 0, 15, hh, mm)

void t.test('rates: bits and bytes per second, clear refusals', async (t) => {
  const cases: Array<[string, number]> = [
    ['256kbit', 32_000], ['1mbit', 125_000], ['1Mbit', 125_000], ['2Mbps', 250_000], ['64kB', 64_000], ['64KB', 64_000],
    ['2MB', 2_000_000], ['512KiB', 524_288], ['1.5mbit/s', 187_500], ['8kbit', 1000], ['4000', 4000], [' 1 GB ', 1e9]
  ]
  for (const [text, bytes] of cases) t.equal(parseRate(text), bytes, text)
  const refused: Array<[string, RegExp]> = [
    ['fast', /"fast" is not a rate: give a number and a unit, e.g. 256kbit/],
    ['64kb', /ambiguous: write 64kbit for bits or 64kB for bytes/],
    ['2mb', /ambiguous: write 2mbit for bits or 2MB for bytes/],
    ['2kib', /ambiguous: write 2kbit for bits or 2KiB for bytes/],
    ['10 furlongs', /unknown unit "furlongs"/],
    ['1kbit', /out of range: from 8kbit/],
    ['0', /out of range/],
    ['100gbit', /out of range/],
    ['-5kB', /not a rate/]
  ]
  for (const [text, message] of refused) t.throws(() => parseRate(text), { code: 'INVALID_INPUT', message }, text)
  t.equal(formatRate(32_000), '256 kbit/s')
  t.equal(formatRate(187_500), '1.5 Mbit/s')
  t.equal(formatRate(2_000_000_000), '16 Gbit/s')
})

void t.test('files windows: parsing, inside and outside, across midnight', async (t) => {
  t.same(parseWindow('22:00-06:00'), { start: 1320, end: 360 })
  t.same(parseWindow('6:30 - 9:05'), { start: 390, end: 545 })
  for (const bad of ['22-06', '25:00-06:00', '22:60-06:00', '10:00-10:00', 'night', '']) {
    t.throws(() => parseWindow(bad), { code: 'INVALID_INPUT' }, bad)
  }
  t.throws(() => parseWindow('10:00-10:00'), { message: /empty window/ })

  const day = parseWindow('09:00-17:00')
  t.ok(inWindow(day, at(9, 0)), 'start is inside')
  t.ok(inWindow(day, at(16, 59)))
  t.notOk(inWindow(day, at(17, 0)), 'end is outside')
  t.notOk(inWindow(day, at(8, 59)))
  t.notOk(inWindow(day, at(23, 0)))

  const night = parseWindow('22:00-06:00')
  t.ok(inWindow(night, at(22, 0)))
  t.ok(inWindow(night, at(23, 59)))
  t.ok(inWindow(night, at(0, 0)), 'midnight is inside a window that wraps it')
  t.ok(inWindow(night, at(5, 59)))
  t.notOk(inWindow(night, at(6, 0)))
  t.notOk(inWindow(night, at(12, 0)))
  t.notOk(inWindow(night, at(21, 59)))
})

void t.test('the background rule: metered never, a window only inside it, no profile always', async (t) => {
  t.equal(backgroundRefusal(undefined, at(12, 0)), undefined)
  t.equal(backgroundRefusal({ maxRate: 32_000 }, at(12, 0)), undefined, 'a rate cap alone holds nothing back')
  t.equal(backgroundRefusal({ metered: true }, at(3, 0)), 'metered')
  t.equal(backgroundRefusal({ metered: true, filesWindow: '22:00-06:00' }, at(3, 0)), 'metered', 'metered wins inside the window too')
  t.equal(backgroundRefusal({ filesWindow: '22:00-06:00' }, at(3, 0)), undefined)
  t.equal(backgroundRefusal({ filesWindow: '22:00-06:00' }, at(12, 0)), 'outside its files window 22:00-06:00')
})

void t.test('a thin link: metered, or capped at 1 Mbit/s or less', async (t) => {
  t.equal(isThinLink(undefined), false, 'no profile')
  t.equal(isThinLink({}), false)
  t.equal(isThinLink({ metered: true }), true)
  t.equal(isThinLink({ maxRate: parseRate('256kbit') }), true)
  t.equal(isThinLink({ maxRate: parseRate('1mbit') }), true, 'exactly 1 Mbit/s')
  t.equal(isThinLink({ maxRate: parseRate('2mbit') }), false)
  t.equal(isThinLink({ filesWindow: '22:00-06:00' }), false, 'a files window alone says nothing of the link')
})

void t.test('patching a profile: set, clear, normalise, all or nothing', async (t) => {
  const set = patchLink(undefined, { maxRate: 32_000, filesWindow: '6:00-7:30', metered: true })
  t.same(set, { maxRate: 32_000, filesWindow: '06:00-07:30', metered: true })
  t.equal(formatLink(set), '256 kbit/s, files 06:00-07:30, metered')
  t.same(patchLink(set, { metered: false }), { maxRate: 32_000, filesWindow: '06:00-07:30' })
  t.equal(patchLink(set, { maxRate: null, filesWindow: null, metered: false }), undefined, 'nothing left: no profile')
  t.equal(formatLink(undefined), '-')
  t.throws(() => patchLink(set, { maxRate: 5, metered: false }), { code: 'INVALID_INPUT' })
  t.throws(() => patchLink(set, { filesWindow: '9-5' }), { code: 'INVALID_INPUT' })
})

void t.test('the peer book keeps link profiles across a restart; bad input and unknown peers change nothing', async (t) => {
  const dir = await tempDir(t)
  const self = peerIdOf(await generateKeyPair('Ed25519'))
  const peer = peerIdOf(await generateKeyPair('Ed25519'))
  const stranger = peerIdOf(await generateKeyPair('Ed25519'))
  const open = async (): Promise<{ book: PeerBook, close: () => Promise<void> }> => {
    const db = await openDb(dir)
    const book = await PeerBook.open({ trusted: jsonSublevel<PeerEntry>(db, 'peers'), pending: jsonSublevel<PendingPeer>(db, 'pending'), self })
    return { book, close: async () => { await db.close() } }
  }
  const first = await open()
  await first.book.add(`/ip4/10.1.2.3/tcp/4001/p2p/${peer}`, 'A')
  const changed: string[] = []
  first.book.on('link', id => changed.push(id))
  t.match(await first.book.setLink(peer, { maxRate: 32_000, filesWindow: '22:00-06:00', metered: true }), { link: { maxRate: 32_000, filesWindow: '22:00-06:00', metered: true } })
  await t.rejects(first.book.setLink(peer, { maxRate: null, filesWindow: '25:00-01:00' }), { code: 'INVALID_INPUT' })
  await t.rejects(first.book.setLink(stranger, { metered: true }), { code: 'NOT_FOUND' })
  t.same(changed, [peer], 'one change announced')
  await first.book.update(peer, { lastSyncAt: 7 })
  await first.close()

  const second = await open()
  t.teardown(second.close)
  t.same(second.book.link(peer), { maxRate: 32_000, filesWindow: '22:00-06:00', metered: true }, 'the refused patch changed nothing; the profile survived the restart and an update')
  await second.book.setLink(peer, { metered: false, maxRate: null, filesWindow: null })
  t.equal(second.book.get(peer)?.link, undefined, 'cleared entirely')
})

void t.test('a link budget follows the profile: one per peer and direction, replaced when the rate changes', async (t) => {
  const rates = new Map<string, number>([['a', 32_000]])
  const links = new LinkRates(peer => rates.get(peer))
  const send = links.pacer('a', 'send')
  t.equal(send?.bytesPerSecond, 32_000)
  t.equal(links.pacer('a', 'send'), send, 'shared by every stream to the peer')
  t.not(links.pacer('a', 'receive'), send, 'each direction has its own')
  t.equal(links.pacer('b', 'send'), undefined, 'no cap, no budget')
  rates.set('a', 64_000)
  t.equal(links.pacer('a', 'send')?.bytesPerSecond, 64_000)
  rates.delete('a')
  t.equal(links.pacer('a', 'send'), undefined)
})

/** Just enough of a libp2p stream to watch what a FramedStream hands it. */
function fakeStream (): { stream: Stream, writes: Uint8Array[] } {
  const writes: Uint8Array[] = []
  const stream = {
    status: 'open',
    readStatus: 'readable',
    remoteWriteStatus: 'writable',
    writableNeedsDrain: false,
    addEventListener () {},
    removeEventListener () {},
    send (data: Uint8Array) { writes.push(data.slice()); return true },
    async close () {},
    abort () {}
  }
  return { stream: stream as unknown as Stream, writes }
}

void t.test('a paced stream sends frames in slices, in call order, and unpaced frames whole', async (t) => {
  const { stream, writes } = fakeStream()
  const taken: number[] = []
  let pacer: { bytesPerSecond: number, take: (n: number) => Promise<void> } | undefined = {
    bytesPerSecond: 16_000,
    take: async (n) => { taken.push(n); await new Promise(resolve => setImmediate(resolve)) }
  }
  const framed = new FramedStream(stream, { pacer: () => pacer })
  const big = { data: new Uint8Array(10_000).fill(7) }
  // Not awaited one by one: slices of the two frames must still not interleave.
  await Promise.all([framed.send(big), framed.send({ n: 2 })])
  t.ok(writes.length > 2, 'the big frame went out in slices')
  t.ok(writes.every(w => w.byteLength <= 2000), 'each slice about an eighth of a second at the rate')
  t.equal(taken.reduce((a, b) => a + b, 0), writes.reduce((a, w) => a + w.byteLength, 0), 'every byte paid for')
  const bytes = Buffer.concat(writes)
  // Both frames, whole and in order: varint length, then CBOR.
  const first = bytes.subarray(2, 2 + (bytes[0]! & 0x7f) + (bytes[1]! << 7))
  t.same(cborDecode(first), big)
  t.same(cborDecode(bytes.subarray(2 + first.byteLength + 1)), { n: 2 })

  pacer = undefined
  writes.length = 0
  await framed.send(big)
  t.equal(writes.length, 1, 'a cap lifted: the frame goes whole again')
})
