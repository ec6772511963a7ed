/**
 * UDP GRO on receive: one recvmmsg message may carry several datagrams of one sender, coalesced
 * by the kernel (a peer's UDP_SEGMENT super-datagram crossing veth whole, or NAPI GRO on a NIC).
 * The kernel reports their size (gso_size) in a UDP_GRO cmsg; every datagram has that size but
 * the last, which may be shorter. The engine takes one datagram per buffer, so each message is
 * split here into (message, offset, length) pieces; the bind turns them into views of its arena.
 */

/** Where each datagram of a received batch sits: message index, offset in it, length. Grown, never shrunk. */
export interface GroPieces {
  message: number[];
  offset: number[];
  length: number[];
}

export function newGroPieces(): GroPieces {
  return { message: [], offset: [], length: [] };
}

/**
 * Splits `count` messages (sizes[i] bytes, gsoSizes[i] the datagram size, 0 = one datagram) into
 * datagrams, in order, into `out`. Returns how many. An empty message stays one empty datagram.
 */
export function splitGro(sizes: ArrayLike<number>, gsoSizes: ArrayLike<number>, count: number, out: GroPieces): number {
  let n = 0;
  for (let i = 0; i < count; i++) {
    const size = sizes[i]!;
    const gso = gsoSizes[i]!;
    if (gso <= 0 || size <= gso) {
      out.message[n] = i;
      out.offset[n] = 0;
      out.length[n] = size;
      n++;
      continue;
    }
    for (let off = 0; off < size; off += gso) {
      out.message[n] = i;
      out.offset[n] = off;
      out.length[n] = Math.min(gso, size - off);
      n++;
    }
  }
  return n;
}
