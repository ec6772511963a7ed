/** RFC 1071 sum over a packet: the native addon against the pure-TS reference. */
import { onesSum } from '../../src/packet/wire/checksum.js';
import { loadNative } from '../../src/io/addon.js';
import type { MicroBenchmark, MicroCase } from './harness.js';

const SIZES = [64, 512, 1400, 9000];

const benchmark: MicroBenchmark = {
  name: 'checksum',
  description: 'ones-complement sum of one packet (RFC 1071), native addon vs TypeScript',
  cases() {
    const native = loadNative();
    const cases: MicroCase[] = [];
    for (const size of SIZES) {
      const buf = Buffer.alloc(size);
      for (let i = 0; i < size; i++) buf[i] = (i * 131) & 0xff;
      let sink = 0;
      cases.push({ name: `ts ${size}B`, params: { variant: 'ts', size }, packetsPerOp: 1, fn: () => void (sink ^= onesSum(buf, 0, size)) });
      if (native) cases.push({ name: `native ${size}B`, params: { variant: 'native', size }, packetsPerOp: 1, fn: () => void (sink ^= native.checksum(buf, 0, size)) });
    }
    return cases;
  },
};
export default benchmark;
