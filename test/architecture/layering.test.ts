/**
 * The layering of docs/architecture.md, enforced: dependencies point one way
 * (util, packet <- io <- datapath <- control, trace <- node <- tools <- cli; rules in
 * .dependency-cruiser.cjs) and no two folders import each other, directly or round a cycle.
 * The same checks run over a small fixture tree that breaks both rules, so they can fail.
 */
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { cruise, type ICruiseResult, type IConfiguration } from 'dependency-cruiser';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rules = createRequire(import.meta.url)('../../.dependency-cruiser.cjs') as IConfiguration;

async function cruiseTree(dir: string): Promise<ICruiseResult> {
  const { output } = await cruise([dir], { ...rules.options, ruleSet: { forbidden: rules.forbidden }, baseDir: root, validate: true }, undefined, {
    tsConfig: { fileName: `${root}tsconfig.test.json` } as never,
  });
  return output as ICruiseResult;
}

/** Every cycle of the folder graph (modules grouped by folder), each as the folders round it. */
export function folderCycles(result: ICruiseResult): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const m of result.modules) {
    if (m.coreModule || m.source.includes('node_modules')) continue;
    const from = dirname(m.source);
    for (const d of m.dependencies) {
      if (d.coreModule || d.couldNotResolve || d.resolved.includes('node_modules')) continue;
      const to = dirname(d.resolved);
      if (to !== from) (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
    }
  }
  // Tarjan's strongly connected components: any component of more than one folder is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) cycles.push(scc.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return cycles;
}

const violations = (r: ICruiseResult): string[] => r.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);

describe('layering', () => {
  it('src/ imports only downwards and has no import cycle', async () => {
    const result = await cruiseTree('src');
    expect(result.summary.totalCruised).toBeGreaterThan(100);
    expect(violations(result)).toEqual([]);
  });

  it('no two folders of src/ import each other, directly or round a cycle', async () => {
    const result = await cruiseTree('src');
    const folders = new Set(result.modules.map((m) => dirname(m.source)).filter((f) => f.startsWith('src/')));
    expect(folders.size).toBeGreaterThan(8);
    expect(folderCycles(result)).toEqual([]);
  });

  it('the same checks refuse a tree that imports upwards and round a folder cycle', async () => {
    // The fixture's folders are named like src/'s, under test/fixtures/layering/src/.
    const fixture = 'test/fixtures/layering/src';
    const result = await cruiseTree(fixture);
    const relocated = { ...rules, forbidden: JSON.parse(JSON.stringify(rules.forbidden).replaceAll('^src/', `^${fixture}/`)) };
    const { output } = await cruise([fixture], { ...relocated.options, ruleSet: { forbidden: relocated.forbidden }, baseDir: root, validate: true });
    const names = violations(output as ICruiseResult).map((v) => v.split(':')[0]);
    expect(names).toContain('util-packet-imports-higher-layer');
    expect(names).toContain('io-imports-higher-layer');
    expect(names).toContain('no-circular');
    expect(folderCycles(result)).toEqual([[`${fixture}/datapath`, `${fixture}/io`]]);
  });
});
