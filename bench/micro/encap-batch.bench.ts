/**
 * The encap header copy alone, for a batch of 64 packets (1400 bytes: what a full-MTU pod packet
 * is): the addon's encapBatch (one call per batch), its TypeScript twin, and the engine's per-packet
 * TS emit (emitVxlan + emitEthernet). Packets go to 4 peers, IPv4 and IPv6 mixed, in one arena as
 * the engine's read buffers are; the templates are built once per batch as the engine does.
 */
import { encapBatchTs, writeEncapTemplate, ENCAP_HEADER_LEN } from '../../src/packet/encap.js';
import type { Vtep } from '../../src/packet/routes.js';
import { loadNative } from '../../src/io/addon.js';
import { emitVxlan, VXLAN_HEADER_LEN } from '../../src/packet/wire/vxlan.js';
import { emitEthernet, EtherType, macFromString } from '../../src/packet/wire/ethernet.js';
import type { MicroBenchmark, MicroCase } from './harness.js';

const BATCH = 64;
const SIZES = [64, 1400, 9000];
const PEERS = 4;
const OUR_MAC = macFromString('0a:58:0a:f4:01:00');

const benchmark: MicroBenchmark = {
  name: 'encap-batch',
  description: `VXLAN + inner Ethernet header written in front of a batch of ${BATCH} packets to ${PEERS} peers: native encapBatch vs TypeScript`,
  cases() {
    const native = loadNative();
    const peers: Vtep[] = Array.from({ length: PEERS }, (_, k) => ({ endpoint: { address: `198.18.0.${k + 2}`, port: 8472 }, vtepMac: macFromString(`0a:58:0a:f4:0${k + 2}:00`), vni: 1 }));
    const cases: MicroCase[] = [];
    for (const size of SIZES) {
      const room = ENCAP_HEADER_LEN + size;
      const arena = Buffer.alloc(room * BATCH, 0xa5);
      const bufs = Array.from({ length: BATCH }, (_, i) => {
        const b = arena.subarray(i * room, (i + 1) * room);
        b[ENCAP_HEADER_LEN] = i % 8 === 7 ? 0x60 : 0x45;
        return b;
      });
      const slots = new Int32Array(BATCH);
      const starts = new Int32Array(BATCH);
      const templates = Buffer.alloc(BATCH * ENCAP_HEADER_LEN);
      const peerOf = Array.from({ length: BATCH }, (_, i) => peers[i % PEERS]!);
      // Slots and starts as classification leaves them (that bookkeeping is timed in encap-decap's
      // outbound stage); per batch, as the engine does: one template per peer, then one copy call.
      for (let i = 0; i < BATCH; i++) {
        slots[i] = i % PEERS;
        starts[i] = bufs[i]!.byteOffset - arena.byteOffset;
      }
      const prepare = (): void => {
        for (let k = 0; k < PEERS; k++) writeEncapTemplate(templates, k, peerOf[k]!, OUR_MAC);
      };
      const params = { size, batch: BATCH, peers: PEERS };
      if (native) {
        const encapBatch = native.encapBatch;
        cases.push({ name: `native ${size}B`, params: { ...params, variant: 'native' }, packetsPerOp: BATCH, fn: () => (prepare(), void encapBatch(arena, starts, BATCH, slots, templates)) });
      }
      cases.push({ name: `ts twin ${size}B`, params: { ...params, variant: 'ts-twin' }, packetsPerOp: BATCH, fn: () => (prepare(), void encapBatchTs(arena, starts, BATCH, slots, templates)) });
      cases.push({
        name: `ts emit ${size}B`,
        params: { ...params, variant: 'ts-emit' },
        packetsPerOp: BATCH,
        fn: () => {
          for (let i = 0; i < BATCH; i++) {
            const buf = bufs[i]!;
            const peer = peerOf[i]!;
            emitVxlan({ vni: peer.vni }, buf, 0);
            emitEthernet({ dst: peer.vtepMac, src: OUR_MAC, etherType: buf[ENCAP_HEADER_LEN]! >> 4 === 6 ? EtherType.IPV6 : EtherType.IPV4 }, buf, VXLAN_HEADER_LEN);
          }
        },
      });
      if (native) {
        // the two must agree before either is timed
        const copy = Buffer.from(arena);
        prepare();
        native.encapBatch(arena, starts, BATCH, slots, templates);
        encapBatchTs(copy, starts, BATCH, slots, templates);
        if (!copy.equals(arena)) throw new Error(`encap-batch ${size}B: native and TS differ`);
      }
    }
    return cases;
  },
};
export default benchmark;
