/**
 * The express path (native/express.cc): at idle, a lone packet is forwarded by the addon inside its
 * poll callback, so no JavaScript runs for it. Every pass through the JS pipeline on a cold CPU costs
 * tens of µs (four passes per ping round trip); the addon's pass costs a few. The engine stays the
 * authority: it compiles its route table (the same IPv4 trie, one header template per target made by
 * the wire emitters) into the addon, sets the gate while a trace watches (the addon then records
 * what it forwards, for the engine's tap: express-tap.ts), and counts what the express path did
 * from shared memory. The addon takes only what it can prove the pipeline would have
 * done byte for byte (IPv4, a route, within the MTU, a plain virtio header, a final checksum) and hands
 * everything else — and any second packet of a wake-up — to the pipeline, already read.
 */
import { isIpv4String, ipv4FromString } from '../packet/wire/ipv4.js';
import type { Mac } from '../packet/wire/ethernet.js';
import { ENCAP_HEADER_LEN, writeEncapTemplate } from '../packet/encap.js';
import type { RouteTable, Vtep } from '../packet/routes.js';
import { DropReason, type CounterSnapshot } from '../packet/counters.js';
import { ExpressCounter, EXPRESS_COUNTER_COUNT } from '../io/counter-layouts.js';
import { ipv4Mask, type Cidr } from '../packet/cidr.js';
import type { AntiSpoofing } from '../packet/policy.js';

// The counter layout is the addon's (native/counters.def); re-exported for the express path's users.
export { ExpressCounter, EXPRESS_COUNTER_COUNT };

/** Adds an express counter block to a snapshot (in place): packets it forwarded, and its drops. */
export function addExpressCounters(s: CounterSnapshot, block: Float64Array): CounterSnapshot {
  s.tx.packets += block[ExpressCounter.TxPackets]!;
  s.tx.bytes += block[ExpressCounter.TxBytes]!;
  s.rx.packets += block[ExpressCounter.RxPackets]!;
  s.rx.bytes += block[ExpressCounter.RxBytes]!;
  s.dropped[DropReason.SendFailed] = (s.dropped[DropReason.SendFailed] ?? 0) + block[ExpressCounter.SendFailed]!;
  s.dropped[DropReason.TunWriteFailed] = (s.dropped[DropReason.TunWriteFailed] ?? 0) + block[ExpressCounter.TunWriteFailed]!;
  return s;
}

/** Bytes per target record: header template, IPv4 address, port. */
const PEER_RECORD = ENCAP_HEADER_LEN + 4 + 2;

/**
 * The table as the addon's express path reads it: the IPv4 trie itself and one record per target.
 * A target the bind cannot reach over IPv4 gets port 0, which the addon leaves to the engine.
 */
export function compileExpressRoutes(table: RouteTable<Vtep>, ourMac: Mac): { trie: Int32Array; peers: Uint8Array } {
  const { trie, targets } = table.compiled4();
  const peers = Buffer.alloc(targets.length * PEER_RECORD);
  const headers = Buffer.alloc(ENCAP_HEADER_LEN);
  targets.forEach((peer, k) => {
    const at = k * PEER_RECORD;
    writeEncapTemplate(headers, 0, peer, ourMac);
    headers.copy(peers, at);
    if (!isIpv4String(peer.endpoint.address)) return;
    peers.writeUInt32BE(ipv4FromString(peer.endpoint.address), at + ENCAP_HEADER_LEN);
    peers.writeUInt16BE(peer.endpoint.port, at + ENCAP_HEADER_LEN + 4);
  });
  return { trie, peers };
}

/**
 * The anti-spoofing guard as the addon reads it (native/express_rules.h BuildGuard): flags, VTEP
 * address, then network and mask of each local IPv4 subnet (the express path carries IPv4 only).
 */
export function compileExpressGuard(antiSpoofing: AntiSpoofing, vtepIp: number, localSubnets: readonly Cidr[]): Uint8Array {
  const local4 = localSubnets.filter((c) => c.family === 4);
  const guard = Buffer.alloc(8 + 8 * local4.length);
  guard[0] = (antiSpoofing.unknownPeer ? 1 : 0) | (antiSpoofing.spoofedSource ? 2 : 0) | (antiSpoofing.notForThisNode ? 4 : 0);
  guard.writeUInt32BE(vtepIp >>> 0, 4);
  local4.forEach((c, k) => {
    guard.writeUInt32BE(c.addr >>> 0, 8 + 8 * k);
    guard.writeUInt32BE(ipv4Mask(c.prefixLen), 12 + 8 * k);
  });
  return guard;
}

/** Whether the express path may run: asked for (datapath.express) and not forced off by VXTUN_NO_EXPRESS=1. */
export function expressWanted(requested: boolean): boolean {
  return requested && process.env.VXTUN_NO_EXPRESS !== '1';
}

/**
 * Whether the express path writes whole inbound batches on the event loop (bulk inbound,
 * native/express.cc) when the engine would write every datagram of one unchanged;
 * VXTUN_NO_BULK_IN=1 leaves every batch to the pipeline.
 */
export function bulkInWanted(): boolean {
  return process.env.VXTUN_NO_BULK_IN !== '1';
}

/**
 * Whether the express path sends whole outbound wake-ups on the event loop (bulk outbound,
 * native/express.cc) while every TUN read is one the engine would send unchanged;
 * VXTUN_NO_BULK_OUT=1 leaves busy outbound traffic to the pipeline.
 */
export function bulkOutWanted(): boolean {
  return process.env.VXTUN_NO_BULK_OUT !== '1';
}

/**
 * Whether the express path waits on a thread of its own while traffic is idle (native/poll.cc), so a
 * lone packet does not wake the Node event loop; VXTUN_NO_EXPRESS_THREAD=1 keeps it on the loop.
 */
export function expressThreadWanted(): boolean {
  return process.env.VXTUN_NO_EXPRESS_THREAD !== '1';
}

/** One engine's express counters plus the workers' sums (either may be absent): zeros when the path is off. */
export function sumExpress(main: Float64Array | undefined, workers: Float64Array | undefined): Float64Array {
  const out = new Float64Array(EXPRESS_COUNTER_COUNT);
  for (const b of [main, workers]) if (b) for (let i = 0; i < out.length; i++) out[i]! += b[i] ?? 0;
  return out;
}
