import type { ConnectionGater, MultiaddrConnection, PeerId } from '@libp2p/interface'
import type { PeerBook } from './peer-book.ts'
import { withPeerId } from './peer-address.ts'

/** Someone the gater turned away. */
export type RefusedConnection = {
  peerId: string
  addr: string
  direction: 'inbound' | 'outbound'
}

/**
 * A libp2p connection gater that admits only the book's trusted peers.
 *
 * The check runs after the Noise handshake (`deny*EncryptedConnection`),
 * the first point where the remote has proved which key it holds; refused
 * peers are recorded as pending so an admin can approve them. Dialling is
 * otherwise unrestricted: private and loopback addresses are where field
 * sites live.
 */
export function createConnectionGater (book: PeerBook, onRefused?: (refused: RefusedConnection) => void): ConnectionGater {
  const check = async (direction: 'inbound' | 'outbound', peerId: PeerId, maConn: MultiaddrConnection): Promise<boolean> => {
    if (book.isTrusted(peerId)) return false
    const id = peerId.toString()
    const addr = withPeerId(maConn.remoteAddr.toString(), id)
    try {
      await book.recordPending(id, addr)
    } catch {
      // Failing to remember a stranger must not let it in, nor break the gater.
    }
    try {
      onRefused?.({ peerId: id, addr, direction })
    } catch {
      // A logging callback must not decide who gets in.
    }
    return true
  }
  return {
    denyDialMultiaddr: () => false,
    denyDialPeer: (peerId) => !book.isTrusted(peerId),
    denyInboundEncryptedConnection: async (peerId, maConn) => await check('inbound', peerId, maConn),
    denyOutboundEncryptedConnection: async (peerId, maConn) => await check('outbound', peerId, maConn)
  }
}

