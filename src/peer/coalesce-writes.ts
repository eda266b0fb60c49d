import { Socket } from 'node:net'

const PATCHED = Symbol.for('dw-mesh.coalesce-writes')
const CORKED = Symbol.for('dw-mesh.corked')

interface TcpConnection {
  socket: Socket
  [CORKED]?: boolean
}

/**
 * Makes libp2p's TCP connections send what one turn of the event loop
 * writes as one socket write.
 *
 * libp2p's TCP connection (@libp2p/tcp 11) gives its socket each chunk it
 * sends as a write of its own, and the socket has TCP_NODELAY set, so on an
 * idle link each write leaves as a packet. A Noise frame is two chunks (its
 * 2-byte length, then the ciphertext), and Yamux sends a frame's header and
 * its data as two Noise frames: one small sync message left as up to four
 * packets of 66 bytes of headers each, and drew an acknowledgement for
 * most of them. A capture of bench:link's change rounds counted 444 packets
 * carrying 2 bytes of payload against 474 pure acknowledgements, and a
 * round of 100 changes that split this way moved 37.5 kB instead of 21 kB.
 *
 * The socket is corked at the first write of a turn and uncorked once the
 * turn is over (setImmediate: after its promise callbacks too), so the turn's
 * chunks leave as one writev: one packet when they fit in one. Nothing waits
 * longer than the turn, unlike Nagle's algorithm, which holds small writes
 * until the previous one is acknowledged.
 *
 * It patches the prototype of the connection class, which the package does
 * not export: given any of its connections, every connection made after
 * is coalesced. Returns false, and changes nothing, if the connection is
 * not of the shape this was written for (another transport, or a libp2p
 * version that changed it), so an upgrade degrades to more packets, never
 * to a broken connection.
 */
export function coalesceWrites (connection: unknown): boolean {
  const maConn = (connection as { maConn?: unknown } | null)?.maConn
  if (maConn === null || typeof maConn !== 'object') return false
  if (!((maConn as { socket?: unknown }).socket instanceof Socket)) return false
  const proto = Object.getPrototypeOf(maConn) as Record<PropertyKey, unknown>
  if (proto[PATCHED] === true) return true
  const sendData = proto.sendData
  if (typeof sendData !== 'function') return false
  proto.sendData = function (this: TcpConnection, data: unknown): unknown {
    const socket = this.socket
    if (this[CORKED] !== true && !socket.destroyed) {
      socket.cork()
      this[CORKED] = true
      setImmediate(() => {
        this[CORKED] = false
        socket.uncork()
      })
    }
    return sendData.call(this, data)
  }
  proto[PATCHED] = true
  return true
}
