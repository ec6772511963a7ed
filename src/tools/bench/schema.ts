/**
 * The result file of `vxtun bench` (zod schema: compare validates what it reads, the tests check
 * what the harness wrote). Version 2: one block of cases per wire mode, raw per-run samples,
 * medians with bootstrap confidence intervals, the build's commit and the underlay's offloads.
 * Which metrics a file holds follows from its settings (stream count, UDP sizes): `metricDefs`.
 */
import { z } from 'zod';

export const RESULT_VERSION = 2;

export interface MetricDef {
  key: string;
  label: string;
  unit: string;
  /** Steers compare's better/worse. */
  higherIsBetter: boolean;
  /** Whether the figure is also shown divided by the kernel's: not for loss, a percentage of what was sent (0 % at the kernel has no quotient). */
  asRatio: boolean;
}

export type MetricKey = string;

export const DEFAULT_UDP_SIZES = [64, 512, 1350] as const;
export const DEFAULT_STREAMS = 4;

/** The metrics measured per run, in display order, for a run's stream count and UDP sizes. */
export function metricDefs(s: { streams: number; udpSizes: readonly number[] }): MetricDef[] {
  const up = (key: string, label: string, unit: string): MetricDef => ({ key, label, unit, higherIsBetter: true, asRatio: true });
  const down = (key: string, label: string, unit: string, asRatio = true): MetricDef => ({ key, label, unit, higherIsBetter: false, asRatio });
  const rr = (key: string, name: string): MetricDef[] => [
    up(`${key}Tps`, name, 'trans/s'),
    down(`${key}P50Us`, `${name} p50`, 'µs'),
    down(`${key}P90Us`, `${name} p90`, 'µs'),
    down(`${key}P99Us`, `${name} p99`, 'µs'),
  ];
  return [
    up('tcp1Gbps', 'TCP 1 stream', 'Gbit/s'),
    up('tcpNGbps', `TCP ${s.streams} streams`, 'Gbit/s'),
    ...s.udpSizes.flatMap((size) => [up(`udp${size}Kpps`, `UDP ${size} B`, 'kpps'), down(`udp${size}LossPct`, `UDP ${size} B loss`, '%', false), up(`udp${size}Mbps`, `UDP ${size} B`, 'Mbit/s')]),
    ...rr('tcpRr', 'TCP_RR'),
    ...rr('tcpCrr', 'TCP_CRR'),
    down('rttIdleP50Ms', 'RTT idle p50', 'ms'),
    down('rttIdleP99Ms', 'RTT idle p99', 'ms'),
    down('rttLoadP50Ms', 'RTT loaded p50', 'ms'),
    down('rttLoadP99Ms', 'RTT loaded p99', 'ms'),
    down('cpuSecondsPerGB', 'dataplane CPU per GB', 'CPU·s/GB'),
    down('hostCpuSecondsPerGbit', 'host busy CPU per Gbit', 'CPU·s/Gbit'),
    down('peakRssMiB', 'dataplane peak RSS', 'MiB'),
  ];
}

/** Metrics that belong to the dataplane's own processes: none for kernel-only cases. */
export const PROCESS_METRICS = ['cpuSecondsPerGB', 'peakRssMiB'];

/** The case every figure is also divided by when it was measured: the naive `fs.read` + `dgram.send` design (issue 3: pure-TS ≥ 5 × naive). */
export const NAIVE_CASE = 'naive';

const nullableNumber = z.number().finite().nullable();
const Interval = z.object({ lo: z.number().finite(), hi: z.number().finite() }).nullable();

export const StatSchema = z.object({
  median: nullableNumber,
  min: nullableNumber,
  max: nullableNumber,
  /** Runs that produced a value. */
  n: z.number().int().nonnegative(),
  /** Bootstrap confidence interval of the median (settings.confidence); null below two values. */
  ci: Interval,
  /** median / the kernel VXLAN case's median in the same wire block; null when either is missing, the kernel's is 0 or the metric is a loss percentage. */
  ratio: nullableNumber,
  /** Bootstrap confidence interval of that ratio (both cases' runs resampled). */
  ratioCi: Interval,
  /** median / the naive case's median in the same wire block; null when either is missing or the naive one is 0. */
  ratioToNaive: nullableNumber,
});
export type Stat = z.infer<typeof StatSchema>;

export const RunSchema = z.object({
  /** The round this run was measured in: round r measures every case once, in turn. */
  round: z.number().int().positive(),
  metrics: z.record(z.string(), nullableNumber),
  /** Measurements that failed in this run (the metric is null), with the tool's reason. */
  errors: z.array(z.string()),
});
export type RunResult = z.infer<typeof RunSchema>;

export const PlacementSchema = z.object({
  role: z.string(),
  pid: z.number().int().nullable(),
  cpusAllowed: z.string(),
});

/** One underlay interface and its offloads as `ethtool -k` reported them after the case was built. */
export const UnderlayPortSchema = z.object({
  namespace: z.string(),
  ifname: z.string(),
  /** `bridge`: the port on the underlay bridge; `node`: the node's end (eth0). */
  side: z.enum(['bridge', 'node']),
  offloads: z.record(z.string(), z.string()),
});
export type UnderlayPortRecord = z.infer<typeof UnderlayPortSchema>;

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
  underlay: z.array(UnderlayPortSchema),
  runs: z.array(RunSchema),
  summary: z.record(z.string(), StatSchema).nullable(),
  /** Every ping RTT sample (ms) of the measured runs, idle and during the N-stream TCP test. */
  rttSamples: z.object({ idle: z.array(z.number()), load: z.array(z.number()) }),
});
export type CaseResult = z.infer<typeof CaseResultSchema>;

export const WireModeSchema = z.enum(['veth', 'link']);

export const WireResultSchema = z.object({
  wire: WireModeSchema,
  mtu: z.number().int().positive(),
  cases: z.array(CaseResultSchema).min(1),
});
export type WireResult = z.infer<typeof WireResultSchema>;

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
  netperf: z.string(),
  features: z.object({ nativeAddon: z.boolean(), nativeChecksum: z.boolean() }),
  cpusAllowed: z.string(),
  loadAverage: z.array(z.number()),
  /** The host's TCP congestion control, which the pods' TCP starts with (absent before it was recorded). */
  tcpCongestionControl: z.string().optional(),
});

export const SettingsSchema = z.object({
  quick: z.boolean(),
  runs: z.number().int().positive(),
  warmupSeconds: z.number(),
  seconds: z.number().int().positive(),
  pingCount: z.number().int().positive(),
  pingIntervalMs: z.number(),
  cases: z.array(z.string()),
  pinned: z.boolean(),
  wires: z.array(WireModeSchema).min(1),
  mtu: z.number().int().positive(),
  streams: z.number().int().positive(),
  udpSizes: z.array(z.number().int().positive()).min(1),
  /** tc netem arguments applied to every underlay bridge port, or null. */
  netem: z.string().nullable(),
  /** Confidence level of every interval, bootstrap resamples and the generator's seed. */
  confidence: z.number().gt(0).lt(1),
  resamples: z.number().int().positive(),
  seed: z.number().int(),
});
export type BenchSettingsRecord = z.infer<typeof SettingsSchema>;

export const BenchResultSchema = z
  .object({
    kind: z.literal('vxtun-bench'),
    version: z.literal(RESULT_VERSION),
    date: z.string(),
    wallSeconds: z.number(),
    command: z.string(),
    /** What was measured: the package version and the git commit (when run from a checkout). */
    build: z.object({ vxtunVersion: z.string(), commit: z.string() }),
    settings: SettingsSchema,
    machine: MachineSchema,
    /** Load average before and after: other work on the machine shows here. */
    noise: z.object({ loadAverageBefore: z.array(z.number()), loadAverageAfter: z.array(z.number()), note: z.string() }),
    baseline: z.literal('kernel'),
    wires: z.array(WireResultSchema).min(1),
  })
  .superRefine((r, ctx) => {
    // Every run holds exactly the metrics its settings call for, and every summary the same keys.
    const keys = metricDefs(r.settings).map((d) => d.key).sort().join(',');
    r.wires.forEach((w, wi) =>
      w.cases.forEach((c, ci) => {
        c.runs.forEach((run, ri) => {
          if (Object.keys(run.metrics).sort().join(',') !== keys) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['wires', wi, 'cases', ci, 'runs', ri, 'metrics'], message: `metrics must be exactly ${keys}` });
        });
        if (c.summary && Object.keys(c.summary).sort().join(',') !== keys) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['wires', wi, 'cases', ci, 'summary'], message: `summary must hold exactly ${keys}` });
      }),
    );
  });
export type BenchResult = z.infer<typeof BenchResultSchema>;
