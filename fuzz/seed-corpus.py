#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/<target>/ from the kernel captures in test/fixtures/kernel/.

Each target reads its input through FuzzedDataProvider, which takes byte strings from the front of
the input and integers from its end (the first integer is the last byte): a seed is the packet
bytes followed by the parameters in reverse order of consumption. Run from the repository root;
the inputs libFuzzer adds while it runs stay out of the repository (build-fuzz/new/).
"""
import glob
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
KERNEL = os.path.join(ROOT, 'test', 'fixtures', 'kernel')
CORPUS = os.path.join(ROOT, 'fuzz', 'corpus')


def fixture(name):
    out = bytearray()
    for line in open(os.path.join(KERNEL, name + '.txt')):
        if line.startswith('\t0x'):
            out += bytes.fromhex(''.join(line.split(':', 1)[1].split()[:8]))
    return bytes(out)


def vxlan_of(frame):
    """The VXLAN datagram (UDP payload) of an outer Ethernet + IPv4 + UDP frame."""
    ihl = (frame[14] & 0x0f) * 4
    return frame[14 + ihl + 8:]


def inner_ip(frame):
    return vxlan_of(frame)[22:]


def csum(data, initial=0):
    if len(data) % 2:
        data += b'\0'
    s = initial + sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return s


def l4_fix(ip):
    """Recomputes the IPv4 header, TCP or UDP checksums of an IPv4 or IPv6 packet."""
    ip = bytearray(ip)
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0f) * 4
        ip[10:12] = b'\0\0'
        ip[10:12] = struct.pack('!H', ~csum(bytes(ip[:ihl])) & 0xffff)
        proto, pseudo_addrs, l4 = ip[9], bytes(ip[12:20]), ihl
    else:
        proto, pseudo_addrs, l4 = ip[6], bytes(ip[8:40]), 40
    at = l4 + (16 if proto == 6 else 6)
    ip[at:at + 2] = b'\0\0'
    c = ~csum(bytes(ip[l4:]), csum(pseudo_addrs, proto + len(ip) - l4)) & 0xffff
    ip[at:at + 2] = struct.pack('!H', c or (0xffff if proto == 17 else 0))
    return bytes(ip)


def tcp_segments(ip, pieces):
    """`pieces` consecutive segments of the IPv4 TCP packet ip's payload, ACK set, ids numbered on."""
    ihl = (ip[0] & 0x0f) * 4
    thl = (ip[ihl + 12] >> 4) * 4
    head, payload = ip[:ihl + thl], ip[ihl + thl:]
    size = -(-len(payload) // pieces)
    seq = struct.unpack('!I', head[ihl + 4:ihl + 8])[0]
    out = []
    for k in range(pieces):
        chunk = payload[k * size:(k + 1) * size]
        h = bytearray(head)
        h[2:4] = struct.pack('!H', len(h) + len(chunk))
        h[4:6] = struct.pack('!H', (struct.unpack('!H', head[4:6])[0] + k) & 0xffff)
        h[ihl + 4:ihl + 8] = struct.pack('!I', (seq + k * size) & 0xffffffff)
        h[ihl + 13] = 0x10 | (0x08 if k == pieces - 1 else 0)
        out.append(l4_fix(bytes(h) + chunk))
    return out


def udp_datagrams(ip, pieces, size):
    """`pieces` IPv4 UDP datagrams of one flow, `size` payload bytes each, ids numbered on."""
    ihl = 20
    out = []
    for k in range(pieces):
        h = bytearray(ip[:ihl + 8])
        h[0] = 0x45
        h[2:4] = struct.pack('!H', ihl + 8 + size)
        h[4:6] = struct.pack('!H', (struct.unpack('!H', ip[4:6])[0] + k) & 0xffff)
        h[6:8] = b'\x40\0'
        h[ihl + 4:ihl + 6] = struct.pack('!H', 8 + size)
        out.append(l4_fix(bytes(h) + bytes((k + j) & 0xff for j in range(size))))
    return out


def ipv6_tcp(ip4):
    """The IPv4 TCP packet's segment moved into IPv6 (fd00::/8 addresses)."""
    ihl = (ip4[0] & 0x0f) * 4
    seg = ip4[ihl:]
    h = bytes([0x60, 0, 0, 0]) + struct.pack('!HBB', len(seg), 6, 64)
    h += bytes.fromhex('fd000244000100000000000000000002') + bytes.fromhex('fd000244000200000000000000000002')
    return l4_fix(h + seg)


def ints(*pairs):
    """Trailer bytes for integers consumed in this order: (value, bytes) with the first-consumed
    most significant byte last in the input."""
    out = bytearray()
    for value, width in pairs:
        for i in range(width):  # consumed last byte first, most significant first
            out.insert(0, (value >> (8 * (width - 1 - i))) & 0xff)
    return bytes(out)


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), 'wb') as f:
        f.write(data)


def main():
    names = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(KERNEL, '*.txt')))
    frames = {n: fixture(n) for n in names}
    vx = {n: f for n, f in frames.items() if n.startswith('vxlan-')}
    tcp = inner_ip(vx['vxlan-tcp-data'])
    udp = inner_ip(vx['vxlan-udp'])
    mac = vxlan_of(vx['vxlan-tcp-data'])[8:14]

    # express_rules: chunks, targets, set, (at, value)..., full trie, maxInner, readRoom, mac, vni, tunMtu, inbound.
    def express_params(inbound):
        return ints((0, 1), (1, 1), (1, 1), (10, 1), (5, 1), (1, 1), (1450, 2), (65535, 3),
                    *[(b, 1) for b in mac], (1, 3), (1450 - 68, 2), (1 if inbound else 0, 1))
    for n, f in vx.items():
        write('express_rules', n + '-inbound', vxlan_of(f) + express_params(True))
        write('express_rules', n + '-outbound', inner_ip(f) + express_params(False))

    # checksum: initial, start, offset, then the bytes.
    for n, f in vx.items():
        ip = inner_ip(f)
        ihl = (ip[0] & 0x0f) * 4 if ip[0] >> 4 == 4 else 40
        write('checksum', n, ip + ints((0, 4), (ihl, 2), (16, 1)))

    # tun_offload_segment: virtio_net_hdr (NEEDS_CSUM, type, hdr_len, gso_size, csum_start, csum_offset) + packet.
    def vnet(gso_type, hdr_len, gso_size, start, offset):
        return struct.pack('<BBHHHH', 1, gso_type, hdr_len, gso_size, start, offset)
    thl = (tcp[20 + 12] >> 4) * 4
    write('tun_offload_segment', 'tcpv4', vnet(1, 20 + thl, max(1, (len(tcp) - 20 - thl) // 3), 20, 16) + tcp)
    v6 = ipv6_tcp(tcp)
    write('tun_offload_segment', 'tcpv6', vnet(4, 40 + thl, max(1, (len(v6) - 40 - thl) // 2), 40, 16) + v6)
    write('tun_offload_segment', 'udpv4', vnet(5, 28, max(1, (len(udp) - 28) // 2), 20, 6) + udp)

    # tun_offload_coalesce: the packets' bytes, then coalesce mode and per packet (own header, length).
    def batch(packets, mode):
        return b''.join(packets) + ints((mode - 1, 1), *[p for pkt in packets for p in ((0, 1), (len(pkt), 2))])
    write('tun_offload_coalesce', 'tcpv4-run', batch(tcp_segments(tcp, 3), 1))
    write('tun_offload_coalesce', 'tcpv6-run', batch([ipv6_tcp(s) for s in tcp_segments(tcp, 3)], 3))
    write('tun_offload_coalesce', 'udpv4-run', batch(udp_datagrams(udp, 4, 100), 2))
    write('tun_offload_coalesce', 'mixed', batch(tcp_segments(tcp, 2) + udp_datagrams(udp, 2, 60), 3))

    # encap: count, (start, slot) per packet, template count; template bytes, then the arena.
    for n, f in vx.items():
        d = vxlan_of(f)
        arena = bytes(22) + d[22:]
        write('encap', n, d[:22] + arena + ints((1, 1), (2, 2), (1, 1), (1, 1)))


if __name__ == '__main__':
    main()
