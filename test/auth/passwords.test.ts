import t from 'tap'
import { randomBytes, scryptSync } from 'node:crypto'
import { dummyVerify, hashPassword, validatePasswordPolicy, verifyPassword } from '../../src/auth/passwords.ts'

const b64 = (bytes: Buffer): string => bytes.toString('base64').replace(/=+$/, '')

t.test('hash and verify round trip at the default parameters', async (t) => {
  const phc = await hashPassword('correct horse battery staple')
  t.match(phc, /^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
  t.equal(await verifyPassword('correct horse battery staple', phc), true)
  t.equal(await verifyPassword('correct horse battery stapl', phc), false, 'wrong password')
  t.equal(await verifyPassword('', phc), false, 'empty password')
})

t.test('salts are unique', async (t) => {
  const params = { ln: 10, r: 8, p: 1 }
  const hashes = await Promise.all([1, 2, 3, 4].map(() => hashPassword('same password', params)))
  const salts = hashes.map((phc) => phc.split('$')[3])
  t.equal(new Set(salts).size, hashes.length)
  t.equal(new Set(hashes).size, hashes.length)
  t.equal(Buffer.from(salts[0] ?? '', 'base64').length, 16)
})

t.test('parameters are read from the string, not assumed', async (t) => {
  const salt = randomBytes(16)
  const key = scryptSync('hunter2hunter2', salt, 32, { N: 2 ** 12, r: 4, p: 2 })
  const phc = `$scrypt$ln=12,r=4,p=2$${b64(salt)}$${b64(key)}`
  t.equal(await verifyPassword('hunter2hunter2', phc), true)
  t.equal(await verifyPassword('hunter2hunter3', phc), false)
  const wrongParams = phc.replace('ln=12', 'ln=11')
  t.equal(await verifyPassword('hunter2hunter2', wrongParams), false)

  const longer = scryptSync('hunter2hunter2', salt, 64, { N: 2 ** 10, r: 8, p: 1 })
  t.equal(await verifyPassword('hunter2hunter2', `$scrypt$ln=10,r=8,p=1$${b64(salt)}$${b64(longer)}`), true,
    'hash length taken from the string too')
})

t.test('passwords are NFKC-normalised before hashing', async (t) => {
  const phc = await hashPassword('caf\u00e9-latte', { ln: 10, r: 8, p: 1 })
  t.equal(await verifyPassword('cafe\u0301-latte', phc), true)
})

t.test('malformed or hostile hashes return false without throwing', async (t) => {
  const good = await hashPassword('password123', { ln: 10, r: 8, p: 1 })
  const [, , params, salt, hash] = good.split('$')
  const cases: Record<string, unknown> = {
    empty: '',
    'not a string': 42,
    null: null,
    'wrong algorithm': `$argon2id$${params}$${salt}$${hash}`,
    'missing hash': `$scrypt$${params}$${salt}`,
    'extra field': `${good}$x`,
    'bad params': `$scrypt$ln=10,r=8$${salt}$${hash}`,
    'non-numeric params': `$scrypt$ln=x,r=8,p=1$${salt}$${hash}`,
    'zero ln': `$scrypt$ln=0,r=8,p=1$${salt}$${hash}`,
    'memory bomb': `$scrypt$ln=30,r=8,p=1$${salt}$${hash}`,
    'too much memory': `$scrypt$ln=19,r=8,p=1$${salt}$${hash}`,
    'bad base64': `$scrypt$${params}$${salt}$!!!!`,
    'short hash': `$scrypt$${params}$${salt}$${b64(randomBytes(8))}`,
    'short salt': `$scrypt$${params}$AAAA$${hash}`,
    huge: `$scrypt$${params}$${salt}$${'A'.repeat(10_000)}`
  }
  for (const [name, phc] of Object.entries(cases)) {
    t.equal(await verifyPassword('password123', phc as string), false, name)
  }
  t.equal(await verifyPassword(undefined as unknown as string, good), false, 'non-string password')
})

t.test('dummyVerify costs about what a real verify costs', async (t) => {
  const phc = await hashPassword('a real password')
  // The cost is CPU time (this process, all threads: scrypt runs on libuv's
  // pool), which other processes on the machine do not stretch the way they
  // stretch wall-clock time.
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const start = process.cpuUsage()
    await fn()
    const used = process.cpuUsage(start)
    return (used.user + used.system) / 1000
  }
  const real = await time(() => verifyPassword('a wrong password', phc))
  t.equal(await dummyVerify('a wrong password'), false)
  const dummy = await time(() => dummyVerify('a wrong password'))
  // Loose bounds: the point is "a full scrypt", not "free".
  t.ok(dummy > real / 3, `dummy ${dummy.toFixed(0)} ms vs real ${real.toFixed(0)} ms`)
  t.ok(dummy < real * 3, `dummy ${dummy.toFixed(0)} ms vs real ${real.toFixed(0)} ms`)
  t.equal(await dummyVerify(), false)
})

t.test('password policy', async (t) => {
  const rejects = (pw: unknown, rule: string): void => {
    t.throws(() => validatePasswordPolicy(pw), { name: 'DwError', code: 'INVALID_INPUT', details: { rule } },
      `${rule}: ${JSON.stringify(pw)?.slice(0, 20)}`)
  }
  rejects('short', 'minLength')
  rejects('1234567', 'minLength')
  rejects('\u{1F600}'.repeat(7), 'minLength')
  rejects('x'.repeat(1025), 'maxLength')
  rejects('        ', 'notBlank')
  rejects(' \t\n\u00a0  \u3000 ', 'notBlank')
  rejects(12345678, 'type')
  rejects(undefined, 'type')
  t.doesNotThrow(() => validatePasswordPolicy('12345678'))
  t.doesNotThrow(() => validatePasswordPolicy('x'.repeat(1024)))
  t.doesNotThrow(() => validatePasswordPolicy('  spaced out  '))
  t.doesNotThrow(() => validatePasswordPolicy('\u{1F600}'.repeat(8)), 'counts code points, not UTF-16 units')
  t.throws(() => validatePasswordPolicy('short'), { message: /at least 8 characters/ })
})
