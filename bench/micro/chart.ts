/**
 * The micro results as one self-contained SVG: per benchmark, a horizontal bar of ns/packet for each
 * case (log scale: cases span 10 ns to 10 µs), with benny's margin of error as a whisker. Each bar is
 * a <rect class="bar" data-case="<benchmark>/<case>"> so a test can check what drew.
 */
import { num, escapeHtml } from '../../src/tools/bench/format.js';
import type { MicroRun } from './schema.js';

const ROW = 18;
const LABEL = 230;
const PLOT = 460;

const esc = escapeHtml;

export function renderMicroSvg(run: MicroRun): string {
  const ns = run.results.map((r) => r.nsPerPacket);
  const lmin = Math.floor(Math.log10(Math.min(...ns)));
  const lmax = Math.max(lmin + 1, Math.ceil(Math.log10(Math.max(...ns.map((v, i) => v * (1 + run.results[i]!.marginPercent / 100))))));
  const x = (v: number): number => LABEL + ((Math.log10(Math.max(v, 10 ** lmin)) - lmin) / (lmax - lmin)) * PLOT;
  const parts: string[] = [];
  let y = 40;
  let benchmark = '';
  for (const r of run.results) {
    if (r.benchmark !== benchmark) {
      benchmark = r.benchmark;
      y += 10;
      parts.push(`<text x="8" y="${y + 12}" font-weight="bold">${esc(benchmark)}</text>`);
      y += ROW;
    }
    const w = x(r.nsPerPacket) - LABEL;
    const m = (r.nsPerPacket * r.marginPercent) / 100;
    const color = /native/.test(r.case) ? '#d62728' : '#1f77b4';
    parts.push(
      `<text x="${LABEL - 6}" y="${y + 12}" text-anchor="end">${esc(r.case)}</text>` +
        `<rect class="bar" data-case="${esc(`${r.benchmark}/${r.case}`)}" x="${LABEL}" y="${y + 2}" width="${w.toFixed(1)}" height="${ROW - 5}" fill="${color}"><title>${esc(r.case)}: ${num(r.nsPerPacket)} ns/packet ±${num(r.marginPercent)} %</title></rect>` +
        `<line x1="${x(r.nsPerPacket - m).toFixed(1)}" x2="${x(r.nsPerPacket + m).toFixed(1)}" y1="${y + 8}" y2="${y + 8}" stroke="#000"/>` +
        `<text x="${(x(r.nsPerPacket + m) + 4).toFixed(1)}" y="${y + 12}">${num(r.nsPerPacket)}</text>`,
    );
    y += ROW;
  }
  const ticks: string[] = [];
  for (let p = lmin; p <= lmax; p++) {
    const tx = x(10 ** p).toFixed(1);
    ticks.push(`<line x1="${tx}" x2="${tx}" y1="30" y2="${y}" stroke="#e5e5e5"/><text x="${tx}" y="${y + 14}" text-anchor="middle">${num(10 ** p)}</text>`);
  }
  const width = LABEL + PLOT + 80;
  const height = y + 40;
  const title = `vxtun micro benchmarks, ns per packet (log scale; red: native code), ${run.date.slice(0, 16)}Z, ${run.machine.cores} cores, shared machine`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">` +
    `<text x="8" y="18" font-size="14">${esc(title)}</text>${ticks.join('')}${parts.join('')}` +
    `<text x="${LABEL + PLOT / 2}" y="${height - 8}" text-anchor="middle">ns per packet (whisker: benny's margin of error)</text></svg>\n`
  );
}
