import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

/** Domain separation: a node's key signs other things (Noise handshakes); a change signature can never be one of those. */
const DOMAIN = Buffer.from('dw-mesh change v1\n')

function signedBytes (hash: string): Buffer {
  return Buffer.concat([DOMAIN, Buffer.from(hash, 'hex')])
}

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')

/** Signs change hashes with the node's Ed25519 identity key (node:crypto: fast and synchronous). */
export class ChangeSigner {
  readonly #key: KeyObject

  constructor (identity: PrivateKey) {
    if (identity.type !== 'Ed25519') throw new Error('change signatures need an Ed25519 identity')
    // libp2p keeps an Ed25519 private key as seed (32 bytes) then public key (32 bytes).
    const raw = identity.raw
    this.#key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x: b64url(raw.subarray(32, 64)) }, format: 'jwk' })
  }

  sign (hash: string): Uint8Array {
    return new Uint8Array(sign(null, signedBytes(hash), this.#key))
  }
}

const publicKeys = new Map<string, KeyObject | null>()

/** The public key a peer id names (Ed25519 peer ids embed it), or null when it names none. */
function publicKeyOf (peerId: string): KeyObject | null {
  let key = publicKeys.get(peerId)
  if (key !== undefined) return key
  try {
    const pub = peerIdFromString(peerId).publicKey
    key = pub?.type === 'Ed25519'
      ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pub.raw) }, format: 'jwk' })
      : null
  } catch {
    key = null
  }
  if (publicKeys.size > 10_000) publicKeys.clear()
  publicKeys.set(peerId, key)
  return key
}

/** True when `sig` is `peerId`'s signature over the change `hash`. */
export function verifyChange (peerId: string, hash: string, sig: Uint8Array): boolean {
  if (sig.length !== 64 || !/^[0-9a-f]{64}$/.test(hash)) return false
  const key = publicKeyOf(peerId)
  if (key === null) return false
  try {
    return verify(null, signedBytes(hash), key, sig)
  } catch {
    return false
  }
}
