/**
 * Node's start-up pages given back (native/memory.cc, src/node/memory.ts), in a child Node process
 * of its own: its file-backed RSS falls at once, no private page anywhere is given up (every mapping
 * that held private pages still holds them: RELRO, data, heaps), the process goes on running the code
 * it gave back (the pages fault back in from the page cache), a second call is harmless, and
 * VXTUN_KEEP_STARTUP_PAGES=1 keeps them. And the default number of engines, one per core up to 4
 * but one on two cores or fewer. Needs no root; a missing addon fails these tests.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { defaultWorkers } from '../../src/datapath/workers.js';
import { releaseStartupPages, startupPagesError } from '../../src/node/memory.js';

const addonPath = process.env.VXTUN_ADDON || join(fileURLToPath(new URL('../..', import.meta.url)), 'build', 'Release', 'vxtun_native.node');
requireNative();

interface ChildReport {
  before: number;
  after: number;
  released: { mappings: number; bytes: number };
  again: { mappings: number; bytes: number };
  /** Mappings that held private pages before, with their Anonymous kB then and their Rss kB after. */
  privateKept: Array<{ range: string; anonymousBefore: number; rssAfter: number }>;
  digest: string;
}

/** Runs the release in a fresh `node` and reports RssFile (KiB) around it, then hashes with code it gave back. */
function releaseInChild(): ChildReport {
  const script = `
    const fs = require('node:fs');
    const rssFile = () => Number(/^RssFile:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
    const smaps = () => {
      const out = new Map(); let range;
      for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
        const head = /^([0-9a-f]+-[0-9a-f]+) /.exec(line);
        if (head) { range = head[1]; out.set(range, {}); continue; }
        const f = /^(Rss|Anonymous):\\s+(\\d+) kB/.exec(line);
        if (f && range) out.get(range)[f[1]] = Number(f[2]);
      }
      return out;
    };
    const addon = require(${JSON.stringify(addonPath)});
    const mapsBefore = smaps();
    const before = rssFile();
    const released = addon.releaseNodeCodePages();
    const after = rssFile();
    const mapsAfter = smaps();
    const privateKept = [...mapsBefore].filter(([range, m]) => m.Anonymous > 0 && mapsAfter.has(range))
      .map(([range, m]) => ({ range, anonymousBefore: m.Anonymous, rssAfter: mapsAfter.get(range).Rss }));
    const again = addon.releaseNodeCodePages();
    const digest = require('node:crypto').createHash('sha256').update(Buffer.alloc(1 << 20, 7)).digest('hex');
    process.stdout.write(JSON.stringify({ before, after, released, again, privateKept, digest }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as ChildReport;
}

describe("Node's start-up pages given back", () => {
  it('leave the RSS at once, no private page goes, and the process goes on running the code they held', () => {
    const r = releaseInChild();
    // RELRO, .data, .bss, heaps and stacks hold private pages (seen: dozens of mappings); each keeps them
    expect(r.privateKept.length).toBeGreaterThan(3);
    for (const m of r.privateKept) expect(m.rssAfter, m.range).toBeGreaterThanOrEqual(m.anonymousBefore);
    expect(r.released.mappings).toBeGreaterThan(0);
    // Node's bootstrap alone maps 25-35 MiB of the binary (seen); most of it leaves
    expect(r.released.bytes).toBeGreaterThan(8 * 2 ** 20);
    expect(r.before - r.after).toBeGreaterThan(8 * 1024);
    expect(r.again.bytes).toBeLessThan(r.released.bytes);
    expect(r.digest).toBe(createHash('sha256').update(Buffer.alloc(1 << 20, 7)).digest('hex'));
  });

  it('are kept with VXTUN_KEEP_STARTUP_PAGES=1', () => {
    expect(releaseStartupPages({ VXTUN_KEEP_STARTUP_PAGES: '1' })).toBe(0);
  });

  it('when giving them back fails, the failure is kept for the node to log, nothing throws, and later calls still count', () => {
    const failing = () => ({
      releaseNodeCodePages: (): never => {
        throw new TypeError('releaseNodeCodePages: unparsable line in /proc/self/smaps: x');
      },
    });
    expect(startupPagesError()).toBeUndefined();
    expect(releaseStartupPages({}, failing)).toBe(0);
    expect(startupPagesError()).toBe('releaseNodeCodePages: unparsable line in /proc/self/smaps: x');
    expect(releaseStartupPages({}, () => ({ releaseNodeCodePages: () => ({ mappings: 1, bytes: 4096 }) }))).toBe(4096);
    expect(releaseStartupPages({}, () => undefined)).toBe(4096); // no addon (VXTUN_NO_NATIVE=1): nothing more
    expect(startupPagesError()).toBe('releaseNodeCodePages: unparsable line in /proc/self/smaps: x'); // the first failure
  });
});

describe('the default number of engines', () => {
  it('is one per core up to 4, but one on two cores or fewer', () => {
    expect([1, 2, 3, 4, 8, 64].map((cores) => defaultWorkers(cores))).toEqual([1, 1, 3, 4, 4, 4]);
  });
});
