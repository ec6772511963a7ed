/** Order statistics over small samples (runs, ping RTTs). */

export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  // Nearest-rank on the sorted sample: p99 of 50 pings is the largest but one, never an interpolation.
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[idx]!;
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function summarize(values: readonly (number | null)[]): { median: number | null; min: number | null; max: number | null; n: number } {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return { median: null, min: null, max: null, n: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

export function ratio(value: number | null, baseline: number | null): number | null {
  if (value === null || baseline === null || baseline === 0) return null;
  return value / baseline;
}

/** A seeded generator (mulberry32): the same seed gives the same intervals, so a file reproduces. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Interval {
  lo: number;
  hi: number;
}

export interface BootstrapOptions {
  confidence: number;
  resamples: number;
  seed: number;
}

function resample(values: readonly number[], rnd: () => number): number[] {
  return values.map(() => values[Math.floor(rnd() * values.length)]!);
}

function percentileInterval(estimates: number[], confidence: number): Interval {
  estimates.sort((a, b) => a - b);
  const tail = (1 - confidence) / 2;
  const at = (q: number): number => estimates[Math.min(estimates.length - 1, Math.max(0, Math.round(q * (estimates.length - 1))))]!;
  return { lo: at(tail), hi: at(1 - tail) };
}

/** Percentile bootstrap interval of the median; null below two values (one value has no spread to resample). */
export function bootstrapMedianCi(values: readonly number[], o: BootstrapOptions): Interval | null {
  if (values.length < 2) return null;
  const rnd = seededRandom(o.seed);
  const estimates = Array.from({ length: o.resamples }, () => median(resample(values, rnd))!);
  return percentileInterval(estimates, o.confidence);
}

/** Percentile bootstrap interval of median(a) / median(b), each sample resampled on its own; null when either has fewer than two values or a resampled baseline median is 0. */
export function bootstrapRatioCi(a: readonly number[], b: readonly number[], o: BootstrapOptions): Interval | null {
  if (a.length < 2 || b.length < 2) return null;
  const rnd = seededRandom(o.seed);
  const estimates: number[] = [];
  for (let i = 0; i < o.resamples; i++) {
    const den = median(resample(b, rnd))!;
    const num = median(resample(a, rnd))!;
    if (den === 0) return null;
    estimates.push(num / den);
  }
  return percentileInterval(estimates, o.confidence);
}

export interface MannWhitney {
  /** U of the first sample: pairs (x, y) with x > y, ties counted half. */
  u: number;
  /** Two-sided p-value: exact when there are no ties, else the normal approximation with tie and continuity corrections. */
  p: number;
  exact: boolean;
}

/** How many orderings of n1 + n2 distinct values give each U (index): the exact null distribution of U. */
function uDistribution(n1: number, n2: number): number[] {
  // counts[k][u]: subsets of size k of the items seen so far with u inversions; built item by item.
  const max = n1 * n2;
  let counts: number[][] = Array.from({ length: n1 + 1 }, () => new Array<number>(max + 1).fill(0));
  counts[0]![0] = 1;
  for (let item = 0; item < n1 + n2; item++) {
    const next = counts.map((row) => [...row]);
    // Choosing this item for sample 1 adds (items of sample 2 before it) to U.
    for (let k = 0; k < n1; k++) {
      const before2 = item - k;
      if (before2 < 0 || before2 > n2) continue;
      for (let u = 0; u + before2 <= max; u++) if (counts[k]![u]) next[k + 1]![u + before2]! += counts[k]![u]!;
    }
    counts = next;
  }
  return counts[n1]!;
}

/** The Mann-Whitney U test (Wilcoxon rank-sum), two-sided, as benchstat applies it to per-run samples. */
export function mannWhitneyU(x: readonly number[], y: readonly number[]): MannWhitney {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) return { u: 0, p: 1, exact: false };
  const all = [...x.map((v) => ({ v, g: 0 })), ...y.map((v) => ({ v, g: 1 }))].sort((a, b) => a.v - b.v);
  const ranks = new Array<number>(all.length);
  const tieGroups: number[] = [];
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    for (let k = i; k <= j; k++) ranks[k] = (i + j) / 2 + 1;
    if (j > i) tieGroups.push(j - i + 1);
    i = j + 1;
  }
  const r1 = all.reduce((s, e, i) => (e.g === 0 ? s + ranks[i]! : s), 0);
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  if (tieGroups.length === 0 && n1 + n2 <= 60) {
    const dist = uDistribution(n1, n2);
    const total = dist.reduce((a, b) => a + b, 0);
    // Two-sided: twice the smaller tail at the observed U (the distribution is symmetric).
    const lowU = Math.min(u, n1 * n2 - u);
    let tail = 0;
    for (let k = 0; k <= lowU; k++) tail += dist[k]!;
    return { u, p: Math.min(1, (2 * tail) / total), exact: true };
  }
  const n = n1 + n2;
  const tieTerm = tieGroups.reduce((s, t) => s + t ** 3 - t, 0);
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) return { u, p: 1, exact: false };
  const z = (Math.abs(u - mean) - 0.5) / Math.sqrt(variance);
  return { u, p: Math.min(1, 2 * (1 - normalCdf(Math.max(0, z)))), exact: false };
}

/** The smallest two-sided p the exact test can give for these sample sizes: when it is above α, no change can show. */
export function smallestP(n1: number, n2: number): number {
  if (n1 === 0 || n2 === 0) return 1;
  let c = 1;
  for (let i = 1; i <= n1; i++) c = (c * (n2 + i)) / i;
  return Math.min(1, 2 / c);
}

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 on erf; error below 1.5e-7). */
export function normalCdf(z: number): number {
  const t = 1 / (1 + (0.3275911 * Math.abs(z)) / Math.SQRT2);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
