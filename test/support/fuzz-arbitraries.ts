// fast-check inputs for the property tests (wire-properties, engine-properties): random bytes, and
// the kernel captures of test/fixtures/kernel cut at each protocol layer, then mutated (bytes
// changed, cut short, extended), so the properties reach past the first length check.
import fc from 'fast-check';
import { listKernelFixtures, loadTcpdumpHex } from './fixtures.js';

/** Every kernel capture, whole (outer Ethernet onwards). */
export const kernelFrames: Buffer[] = listKernelFixtures().map((n) => loadTcpdumpHex(n).bytes);

/** Each capture at every layer a parser may be handed: frame, outer IP, UDP, VXLAN, inner Ethernet, inner IP, inner L4. */
export const kernelLayers: Buffer[] = kernelFrames.flatMap((f) => {
  const out = [f, f.subarray(14)];
  if (f.readUInt16BE(12) !== 0x0800) return out;
  const ihl = (f[14]! & 0x0f) * 4;
  out.push(f.subarray(14 + ihl));
  if (f[14 + 9] !== 17) return out;
  const vxlan = f.subarray(14 + ihl + 8);
  out.push(vxlan, vxlan.subarray(8), vxlan.subarray(22));
  const inner = vxlan.subarray(22);
  if (inner.length > 0 && inner[0]! >> 4 === 4) out.push(inner.subarray((inner[0]! & 0x0f) * 4));
  if (inner.length > 0 && inner[0]! >> 4 === 6) out.push(inner.subarray(40));
  return out;
});

/** `seed` with byte changes, then cut or extended. */
export function mutated(seeds: Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .record({
      seed: fc.constantFrom(...seeds),
      changes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      extra: fc.uint8Array({ maxLength: 16 }),
    })
    .map(({ seed, changes, cut, extra }) => {
      const b = Buffer.concat([seed, Buffer.from(extra)]);
      for (const [at, v] of changes) if (b.length > 0) b[at % b.length] = v;
      return cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
    });
}

/** Random bytes, or a mutated capture layer (the latter more often: it gets further). */
export const packetBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) },
  { weight: 3, arbitrary: mutated(kernelLayers) },
);

/** Offset and length a caller may pass with a buffer: mostly in range, sometimes not. */
export const window = fc.record({ offset: fc.integer({ min: -2, max: 64 }), length: fc.integer({ min: -2, max: 1600 }) });
