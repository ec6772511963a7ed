/**
 * RFC 7348 §5 entropy: the hash of a VXLAN datagram's inner flow (addresses, protocol, ports) that
 * picks its outer source port. The reference for InnerFlowHash in native/udp.cc, which the fast path
 * runs per datagram; this one answers, for a trace, which pool port a datagram left from. The two
 * agree bit for bit (test/unit/flow-hash.test.ts checks this against the ports datagrams really used).
 *
 * `buf[offset, offset + length)` is a VXLAN datagram: 8 VXLAN + 14 Ethernet + the inner IP packet.
 */
const INNER_ETHERTYPE = 8 + 12;
const INNER_IP = 8 + 14;

/** One murmur3-style round (the C++ Mix). */
function mix(h: number, v: number): number {
  v = Math.imul(v, 0xcc9e2d51);
  v = (v << 15) | (v >>> 17);
  v = Math.imul(v, 0x1b873593);
  h ^= v;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

export function innerFlowHash(buf: Buffer, offset: number, length: number): number {
  let h = 0x7348;
  if (length < INNER_IP + 20) return h;
  const etherType = buf.readUInt16BE(offset + INNER_ETHERTYPE);
  const ip = offset + INNER_IP;
  const ipLen = length - INNER_IP;
  let proto: number;
  let l4: number;
  const version = buf[ip]! >> 4;
  // The C++ side loads words in host order (memcpy): little-endian on every target it builds for.
  if (etherType === 0x0800 && version === 4) {
    proto = buf[ip + 9]!;
    h = mix(mix(h, buf.readUInt32LE(ip + 12)), buf.readUInt32LE(ip + 16));
    l4 = (buf[ip]! & 0x0f) * 4;
    if ((buf.readUInt16BE(ip + 6) & 0x1fff) !== 0) l4 = 0; // a later fragment has no ports
  } else if (etherType === 0x86dd && ipLen >= 40 && version === 6) {
    proto = buf[ip + 6]!;
    for (let k = 8; k < 40; k += 4) h = mix(h, buf.readUInt32LE(ip + k));
    l4 = 40;
  } else {
    return h;
  }
  h = mix(h, proto);
  if (l4 !== 0 && (proto === 6 || proto === 17 || proto === 132) && l4 + 4 <= ipLen) h = mix(h, buf.readUInt32LE(ip + l4));
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}
