// Prints, as JSON, the heap bytes the engine allocates per packet in each 1400-byte case of the
// encap-decap micro benchmark (dist/bench/micro). Run with --expose-gc and a young generation
// too big to fill during a window (--min-semi-space-size=64 --max-semi-space-size=64): each window
// starts after a full collection, so heapUsed only grows in it. The median of five windows, so a
// function compiled during one does not count.
import bench from '../../dist/bench/micro/encap-decap.bench.js';

const out = {};
for (const c of bench.cases()) {
  if (!c.name.endsWith(' 1400B')) continue;
  for (let i = 0; i < 20000; i++) c.fn();
  const perPacket = [];
  for (let w = 0; w < 5; w++) {
    globalThis.gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 500; i++) c.fn();
    perPacket.push((process.memoryUsage().heapUsed - before) / (500 * c.packetsPerOp));
  }
  out[c.name] = perPacket.sort((a, b) => a - b)[2];
}
process.stdout.write(JSON.stringify(out) + '\n');
