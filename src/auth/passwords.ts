import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { DwError } from '../errors.ts'

/** scrypt cost parameters as written in a PHC string (`N = 2^ln`). */
export interface ScryptParams {
  ln: number
  r: number
  p: number
}

/** OWASP's current recommendation for scrypt: N=2^17 (128 MiB), r=8, p=1. */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ ln: 17, r: 8, p: 1 })
/**
 * The range of config.json's `login.passwordCost` (log2 of scrypt's N): a
 * check takes 2^cost KiB of memory and time to match. 14 (16 MiB) is the
 * least OWASP lists as acceptable at r=8, p=1's strength class; 20 is the
 * most a stored hash may ask for.
 */
export const PASSWORD_COST_RANGE = Object.freeze({ min: 14, max: 20 })

/** The parameters new hashes get at `cost` (default: DEFAULT_SCRYPT_PARAMS). */
export function scryptParams (cost: number | undefined): Readonly<ScryptParams> {
  return cost === undefined || cost === DEFAULT_SCRYPT_PARAMS.ln ? DEFAULT_SCRYPT_PARAMS : Object.freeze({ ...DEFAULT_SCRYPT_PARAMS, ln: cost })
}

export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 1024

const SALT_BYTES = 16
const KEY_BYTES = 32
// User records (and the hashes in them) replicate from other sites, so a
// stored hash is not fully trusted: its parameters are capped so one crafted
// record cannot make a login allocate gigabytes or run for minutes.
const MAX_MEMORY_BYTES = 256 * 1024 * 1024
const MAX_LN = 20
const MAX_R = 32
const MAX_P = 16
const PHC_PARAMS = /^ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})$/
const B64 = /^[A-Za-z0-9+/]+$/

/**
 * Hashes a password with scrypt and a fresh 16-byte salt.
 * @returns a PHC string: `$scrypt$ln=17,r=8,p=1$<b64 salt>$<b64 hash>`
 */
export async function hashPassword (password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const key = await derive(password, salt, params, KEY_BYTES)
  return formatPhc(params, salt, key)
}

/**
 * Checks a password against a PHC string made by {@link hashPassword}. The
 * cost parameters come from the string, so they can be raised for new hashes
 * without breaking old ones.
 * @returns false on a wrong password and on a malformed or out-of-range hash;
 *   never throws for bad input.
 */
export async function verifyPassword (password: string, phc: string): Promise<boolean> {
  if (typeof password !== 'string') return false
  const parsed = parsePhc(phc)
  if (parsed === undefined) return false
  let actual: Buffer
  try {
    actual = await derive(password, parsed.salt, parsed.params, parsed.hash.length)
  } catch {
    return false
  }
  return timingSafeEqual(actual, parsed.hash)
}

// Per cost, a hash no password can match, so that dummyVerify runs exactly
// the code path of a real verification of a current hash.
const DUMMY_PHC = new Map<number, string>()

/**
 * Costs what {@link verifyPassword} costs for a hash made with `params`
 * (those new hashes get), and always resolves false. Call it when the
 * username is unknown, so that response time does not reveal which
 * usernames exist.
 */
export async function dummyVerify (password = '', params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<boolean> {
  let phc = DUMMY_PHC.get(params.ln)
  if (phc === undefined) {
    phc = formatPhc(params, randomBytes(SALT_BYTES), randomBytes(KEY_BYTES))
    DUMMY_PHC.set(params.ln, phc)
  }
  await verifyPassword(password, phc)
  return false
}

/**
 * Enforces the password policy for new passwords: at least 8 and at most
 * 1024 characters (Unicode code points, after NFKC), not only whitespace.
 * @throws DwError INVALID_INPUT with `details.rule` naming the failed rule.
 */
export function validatePasswordPolicy (password: unknown): asserts password is string {
  if (typeof password !== 'string') {
    throw policyError('type', 'Password must be a string.')
  }
  const length = [...normalise(password)].length
  if (length < PASSWORD_MIN_LENGTH) {
    throw policyError('minLength', `Password must be at least ${PASSWORD_MIN_LENGTH} characters long.`)
  }
  if (length > PASSWORD_MAX_LENGTH) {
    throw policyError('maxLength', `Password must be at most ${PASSWORD_MAX_LENGTH} characters long.`)
  }
  if (password.trim() === '') {
    throw policyError('notBlank', 'Password must not consist only of whitespace.')
  }
}

function policyError (rule: string, message: string): DwError {
  return new DwError('INVALID_INPUT', message, {
    details: { field: 'password', rule, minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH }
  })
}

// NIST SP 800-63B asks for Unicode normalisation before hashing, so the same
// password typed on two keyboards (composed or decomposed accents) matches.
function normalise (password: string): string {
  return password.normalize('NFKC')
}

function derive (password: string, salt: Buffer, params: ScryptParams, keyLength: number): Promise<Buffer> {
  const N = 2 ** params.ln
  const { r, p } = params
  // OpenSSL needs 128*r*(N+2) bytes for V plus 128*r*p for B; Node's default
  // maxmem (32 MiB) is below what ln=17 requires.
  const maxmem = 128 * r * (N + p + 2)
  return new Promise((resolve, reject) => {
    scrypt(normalise(password), salt, keyLength, { N, r, p, maxmem }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

function formatPhc (params: ScryptParams, salt: Buffer, key: Buffer): string {
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`
}

// PHC strings use standard base64 without padding.
function b64 (bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '')
}

function parsePhc (phc: unknown): { params: ScryptParams, salt: Buffer, hash: Buffer } | undefined {
  if (typeof phc !== 'string' || phc.length > 512) return undefined
  const parts = phc.split('$')
  if (parts.length !== 5 || parts[0] !== '' || parts[1] !== 'scrypt') return undefined
  const [, , paramText = '', saltText = '', hashText = ''] = parts
  const match = PHC_PARAMS.exec(paramText)
  if (match === null || !B64.test(saltText) || !B64.test(hashText)) return undefined
  const params = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) }
  if (params.ln < 1 || params.ln > MAX_LN || params.r < 1 || params.r > MAX_R || params.p < 1 || params.p > MAX_P) {
    return undefined
  }
  if (128 * params.r * (2 ** params.ln + params.p + 2) > MAX_MEMORY_BYTES) return undefined
  const salt = Buffer.from(saltText, 'base64')
  const hash = Buffer.from(hashText, 'base64')
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined
  return { params, salt, hash }
}
