/**
 * The shape every micro benchmark file has: `export default { name, cases }`. run.ts finds the
 * files by name (`*.bench.js` next to it), so a new micro benchmark is one new file.
 *
 * A case does `packetsPerOp` packets' worth of work per call, so the runner can report ns/packet
 * and packets/s rather than benny's ops/s.
 */
export interface MicroCase {
  /** Unique within its benchmark, e.g. `ts 1400B`. */
  name: string;
  /** Free-form parameters recorded in the JSON (size, routes, family, variant...). */
  params: Record<string, string | number>;
  /** Packets handled by one call of fn. */
  packetsPerOp: number;
  fn: () => void;
}

export interface MicroBenchmark {
  name: string;
  description: string;
  /** Built once before timing (setup cost is not measured). */
  cases(): MicroCase[];
}

export interface MicroResult {
  benchmark: string;
  case: string;
  params: Record<string, string | number>;
  nsPerPacket: number;
  packetsPerSecond: number;
  /** benny's relative margin of error, percent. */
  marginPercent: number;
  samples: number;
}
