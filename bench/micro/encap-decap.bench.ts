/**
 * The engine's per-packet work, outbound (classify + encap, up to the Bind) and inbound (decap +
 * checks, up to the TUN), in batches of 64 through the real Engine with a TUN and a Bind that only
 * count: what is measured is the pipeline, not a device. Inner packets are IPv4/UDP with a valid
 * checksum, the common case. Encap runs both ways: the TypeScript path (per-packet emit) and the
 * native hooks the datapath gives the engine (the addon's encapBatch and checksum).
 */
import { Engine, HEADROOM } from '../../src/datapath/engine.js';
import { RouteTable } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import type { TunDevice } from '../../src/io/tun-device.js';
import type { Bind, Endpoint } from '../../src/io/bind.js';
import { emitIpv4, ipv4FromString, ipv4PseudoHeaderSum, IpProtocol } from '../../src/packet/wire/ipv4.js';
import { emitUdp } from '../../src/packet/wire/udp.js';
import { emitVxlan, VXLAN_HEADER_LEN } from '../../src/packet/wire/vxlan.js';
import { emitEthernet, EtherType, macFromString } from '../../src/packet/wire/ethernet.js';
import { loadNative } from '../../src/io/addon.js';
import type { EngineOptions } from '../../src/datapath/engine.js';
import type { MicroBenchmark, MicroCase } from './harness.js';

const SIZES = [64, 512, 1400, 9000];
const BATCH = 64;
const LOCAL_MAC = macFromString('0a:58:0a:f4:01:00');
const PEER_MAC = macFromString('0a:58:0a:f4:02:00');
const PEER: Endpoint = { address: '198.18.0.2', port: 8472 };

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(`${text}: ${c}`);
  return c;
}

/** A TUN and a Bind that accept everything and only count, so the engine is all that is timed. */
function countingEnds(): { tun: TunDevice; bind: Bind; counts: { tun: number; bind: number } } {
  const counts = { tun: 0, bind: 0 };
  const tun: TunDevice = {
    name: 'bench0',
    mtu: 9000,
    read: () => 0,
    write: (_b, _s, _o, count) => ((counts.tun += count), count),
    start: () => {},
    close: () => {},
  };
  const bind: Bind = {
    local: { address: '198.18.0.1', port: 8472 },
    send: (_b, _s, _o, count) => ((counts.bind += count), count),
    start: () => {},
    close: async () => {},
  };
  return { tun, bind, counts };
}

/** IPv4/UDP packet of `size` bytes from pod 10.244.1.2 to pod 10.244.2.2 (the reverse when it comes from the peer), written at `offset`. */
function writeInner(buf: Buffer, offset: number, size: number, fromPeer = false): void {
  const src = ipv4FromString(fromPeer ? '10.244.2.2' : '10.244.1.2');
  const dst = ipv4FromString(fromPeer ? '10.244.1.2' : '10.244.2.2');
  const payload = size - 28;
  for (let i = 0; i < payload; i++) buf[offset + 28 + i] = i & 0xff;
  emitIpv4({ src, dst, protocol: IpProtocol.UDP, ttl: 64, payloadLength: size - 20, dontFragment: true }, buf, offset);
  emitUdp({ srcPort: 40000, dstPort: 5201, payloadLength: payload }, buf, offset + 20, ipv4PseudoHeaderSum(src, dst, IpProtocol.UDP, size - 20));
}

/** The engine hooks the native datapath supplies (src/datapath/select.ts), or undefined without the addon. */
function nativeHooks(): Pick<EngineOptions, 'onesSum' | 'encapBatch'> | undefined {
  const native = loadNative();
  if (!native) return undefined;
  const checksum = native.checksum;
  return { onesSum: (buf, offset, length, initial = 0) => checksum(buf, offset, length, initial), encapBatch: native.encapBatch };
}

function engineFor(size: number, hooks: Pick<EngineOptions, 'onesSum' | 'encapBatch'> = {}): { engine: Engine; counts: { tun: number; bind: number } } {
  const { tun, bind, counts } = countingEnds();
  const engine = new Engine(tun, bind, {
    vni: 1,
    vtepMac: LOCAL_MAC,
    vtepIp: ipv4FromString('10.244.1.0'),
    localSubnets: [{ family: 4, addr: ipv4FromString('10.244.1.0'), prefixLen: 24 }],
    port: 8472,
    maxInnerSize: Math.max(size, 1450),
    tunMtu: Math.max(size, 1450),
    batchSize: BATCH,
    ...hooks,
  });
  engine.setRoutes(new RouteTable([{ prefix: cidr('10.244.2.0/24'), target: { endpoint: PEER, vtepMac: PEER_MAC, vni: 1 } }]));
  return { engine, counts };
}

const benchmark: MicroBenchmark = {
  name: 'encap-decap',
  description: 'Engine outbound (classify + VXLAN/Ethernet encap) and inbound (VXLAN checks + decap) per packet, batches of 64',
  cases() {
    const cases: MicroCase[] = [];
    const hooks = nativeHooks();
    for (const size of SIZES) {
      // Outbound: packets sit at HEADROOM as the TUN read leaves them; encap rewrites sizes[], so reset it.
      for (const variant of hooks ? (['ts', 'native'] as const) : (['ts'] as const)) {
        const { engine, counts } = engineFor(size, variant === 'native' ? hooks : {});
        // Views of one arena, as the engine's own read buffers are (what lets encapBatch address them).
        const arena = Buffer.alloc((HEADROOM + size) * BATCH);
        const bufs = Array.from({ length: BATCH }, (_, i) => {
          const b = arena.subarray(i * (HEADROOM + size), (i + 1) * (HEADROOM + size));
          writeInner(b, HEADROOM, size);
          return b;
        });
        const sizes = new Array<number>(BATCH).fill(size);
        cases.push({
          name: `encap ${variant} ${size}B`,
          params: { direction: 'encap', variant, size },
          packetsPerOp: BATCH,
          fn: () => {
            sizes.fill(size);
            engine.handleOutbound(bufs, sizes, BATCH);
          },
        });
        if (variant === 'native') {
          // The native variant must really take the batch path: every header from one encapBatch call.
          let written = 0;
          const encap = hooks!.encapBatch!;
          const probe = engineFor(size, { ...hooks, encapBatch: (...args) => (written = encap(...args)) });
          probe.engine.handleOutbound(bufs, sizes.fill(size), BATCH);
          if (written !== BATCH) throw new Error(`encap native ${size}B: encapBatch wrote ${written} of ${BATCH} headers`);
        }
        engine.handleOutbound(bufs, sizes.fill(size), BATCH);
        if (counts.bind !== BATCH) throw new Error(`encap ${variant} ${size}B: engine sent ${counts.bind} of ${BATCH} (dropped: ${JSON.stringify(engine.counters.snapshot().dropped)})`);
      }
      // Inbound: VXLAN datagrams as the Bind hands them over.
      {
        const { engine, counts } = engineFor(size);
        const bufs = Array.from({ length: BATCH }, () => {
          const b = Buffer.alloc(HEADROOM + size);
          emitVxlan({ vni: 1 }, b, 0);
          emitEthernet({ dst: LOCAL_MAC, src: PEER_MAC, etherType: EtherType.IPV4 }, b, VXLAN_HEADER_LEN);
          writeInner(b, HEADROOM, size, true);
          return b;
        });
        const sizes = new Array<number>(BATCH).fill(HEADROOM + size);
        const srcs = new Array<Endpoint>(BATCH).fill(PEER);
        cases.push({
          name: `decap ts ${size}B`,
          params: { direction: 'decap', variant: 'ts', size },
          packetsPerOp: BATCH,
          fn: () => engine.handleInbound(bufs, sizes, srcs, BATCH),
        });
        engine.handleInbound(bufs, sizes, srcs, BATCH);
        if (counts.tun !== BATCH) throw new Error(`decap ${size}B: engine wrote ${counts.tun} of ${BATCH} (dropped: ${JSON.stringify(engine.counters.snapshot().dropped)})`);
      }
    }
    return cases;
  },
};
export default benchmark;
