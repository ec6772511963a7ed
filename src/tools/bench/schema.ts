/**
 * The result file of `vxtun bench` (zod schema: compare validates what it reads, the tests check
 * what the harness wrote). Every metric is a median with min–max over the runs and, where the
 * kernel's VXLAN has the same metric in the same file, the ratio of the medians.
 */
import { z } from 'zod';

/** Metrics measured per run, in display order. `higherIsBetter` steers compare's wording. */
export const METRICS = {
  tcp1Gbps: { label: 'TCP 1 stream', unit: 'Gbit/s', higherIsBetter: true },
  tcp4Gbps: { label: 'TCP 4 streams', unit: 'Gbit/s', higherIsBetter: true },
  udp64Kpps: { label: 'UDP 64 B', unit: 'kpps', higherIsBetter: true },
  udp64LossPct: { label: 'UDP 64 B loss', unit: '%', higherIsBetter: false },
  udp64Mbps: { label: 'UDP 64 B', unit: 'Mbit/s', higherIsBetter: true },
  udp512Kpps: { label: 'UDP 512 B', unit: 'kpps', higherIsBetter: true },
  udp512LossPct: { label: 'UDP 512 B loss', unit: '%', higherIsBetter: false },
  udp512Mbps: { label: 'UDP 512 B', unit: 'Mbit/s', higherIsBetter: true },
  // 1350 B is issue 3's `iperf3 -u -b 0 -l 1350`: near-MTU datagrams (1350 + 28 + 50 < 1500).
  udp1350Kpps: { label: 'UDP 1350 B', unit: 'kpps', higherIsBetter: true },
  udp1350LossPct: { label: 'UDP 1350 B loss', unit: '%', higherIsBetter: false },
  udp1350Mbps: { label: 'UDP 1350 B', unit: 'Mbit/s', higherIsBetter: true },
  rttIdleP50Ms: { label: 'RTT idle p50', unit: 'ms', higherIsBetter: false },
  rttIdleP99Ms: { label: 'RTT idle p99', unit: 'ms', higherIsBetter: false },
  rttLoadP50Ms: { label: 'RTT loaded p50', unit: 'ms', higherIsBetter: false },
  rttLoadP99Ms: { label: 'RTT loaded p99', unit: 'ms', higherIsBetter: false },
  cpuSeconds: { label: 'dataplane CPU', unit: 's', higherIsBetter: false },
  peakRssMiB: { label: 'dataplane peak RSS', unit: 'MiB', higherIsBetter: false },
} as const;
export type MetricKey = keyof typeof METRICS;
export const METRIC_KEYS = Object.keys(METRICS) as MetricKey[];
export const UDP_SIZES = [64, 512, 1350] as const;
/** The case every figure is also divided by when it was measured: the naive `fs.read` + `dgram.send` design (issue 3: pure-TS ≥ 5 × naive). */
export const NAIVE_CASE = 'naive';

const nullableNumber = z.number().finite().nullable();

export const StatSchema = z.object({
  median: nullableNumber,
  min: nullableNumber,
  max: nullableNumber,
  /** Runs that produced a value. */
  n: z.number().int().nonnegative(),
  /** median / the kernel VXLAN case's median in the same file; null when either is missing or the kernel's is 0. */
  ratio: nullableNumber,
  /** median / the naive case's median in the same file; null when either is missing or the naive one is 0. */
  ratioToNaive: nullableNumber,
});
export type Stat = z.infer<typeof StatSchema>;

const metricsShape = Object.fromEntries(METRIC_KEYS.map((k) => [k, nullableNumber])) as Record<MetricKey, typeof nullableNumber>;
const statsShape = Object.fromEntries(METRIC_KEYS.map((k) => [k, StatSchema])) as Record<MetricKey, typeof StatSchema>;

export const RunSchema = z.object({
  run: z.number().int().positive(),
  metrics: z.object(metricsShape).strict(),
  /** Measurements that failed in this run (the metric is null), with iperf3's or ping's reason. */
  errors: z.array(z.string()),
});
export type RunResult = z.infer<typeof RunSchema>;

export const PlacementSchema = z.object({
  role: z.string(),
  pid: z.number().int().nullable(),
  cpusAllowed: z.string(),
});

export const CaseStatusSchema = z.enum(['measured', 'unsupported', 'failed']);

export const CaseResultSchema = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string(),
  /** What carries the traffic: e.g. "kernel VXLAN", "vxtun", "vxtun + kernel VXLAN", "none (bare underlay)". */
  dataplane: z.string(),
  status: CaseStatusSchema,
  /** Why a case is unsupported or failed (one line). */
  reason: z.string().optional(),
  /** What each vxtun node reported in its "vxtun up" log line (`datapath`); empty for kernel-only cases. */
  datapaths: z.array(z.string()),
  /** CPU and RSS belong to these processes; kernel dataplanes have none (softirq time is not attributable). */
  dataplaneProcesses: z.array(z.string()),
  placement: z.array(PlacementSchema),
  runs: z.array(RunSchema),
  summary: z.object(statsShape).strict().nullable(),
  /** Every ping RTT sample (ms) of the measured runs, idle and during the 4-stream TCP test. */
  rttSamples: z.object({ idle: z.array(z.number()), load: z.array(z.number()) }),
});
export type CaseResult = z.infer<typeof CaseResultSchema>;

export const MachineSchema = z.object({
  hostname: z.string(),
  machineIdHash: z.string(),
  fingerprint: z.string(),
  kernel: z.string(),
  cpuModel: z.string(),
  cores: z.number().int().positive(),
  memoryMiB: z.number(),
  node: z.string(),
  vxtunVersion: z.string(),
  iperf3: z.string(),
  features: z.object({ nativeAddon: z.boolean(), nativeChecksum: z.boolean() }),
  cpusAllowed: z.string(),
  loadAverage: z.array(z.number()),
});

export const BenchResultSchema = z.object({
  kind: z.literal('vxtun-bench'),
  version: z.literal(1),
  date: z.string(),
  wallSeconds: z.number(),
  command: z.string(),
  settings: z.object({
    quick: z.boolean(),
    runs: z.number().int().positive(),
    warmupSeconds: z.number(),
    seconds: z.number().int().positive(),
    pingCount: z.number().int().positive(),
    pingIntervalMs: z.number(),
    cases: z.array(z.string()),
    pinned: z.boolean(),
  }),
  machine: MachineSchema,
  /** Load average before and after: other work on the machine shows here. */
  noise: z.object({ loadAverageBefore: z.array(z.number()), loadAverageAfter: z.array(z.number()), note: z.string() }),
  baseline: z.literal('kernel'),
  cases: z.array(CaseResultSchema).min(1),
});
export type BenchResult = z.infer<typeof BenchResultSchema>;
