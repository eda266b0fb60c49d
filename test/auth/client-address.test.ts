import t from 'tap'
import { clientKeyOf } from '../../src/auth/client-address.ts'

t.test('IPv4 addresses are their own key', async t => {
  t.equal(clientKeyOf('127.0.0.1'), '127.0.0.1')
  t.equal(clientKeyOf('127.0.0.2'), '127.0.0.2')
})

t.test('IPv4-mapped IPv6 counts as the IPv4 address it carries', async t => {
  t.equal(clientKeyOf('::ffff:192.0.2.1'), '192.0.2.1')
  t.equal(clientKeyOf('::FFFF:192.0.2.1'), '192.0.2.1')
})

t.test('IPv6 addresses count by their /64, however they are written', async t => {
  t.equal(clientKeyOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
  t.equal(clientKeyOf('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64')
  t.equal(clientKeyOf('2001:db8::1'), '2001:db8:0:0::/64')
  t.equal(clientKeyOf('::1'), '0:0:0:0::/64')
  t.equal(clientKeyOf('fe80::1%eth0'), 'fe80:0:0:0::/64', 'a zone is dropped')
  t.not(clientKeyOf('2001:db8:1:3::1'), clientKeyOf('2001:db8:1:2::1'), 'another /64 is another client')
})

t.test('no address, or garbage, shares one key', async t => {
  t.equal(clientKeyOf(undefined), 'unknown')
  t.equal(clientKeyOf('not an address'), 'unknown')
})
