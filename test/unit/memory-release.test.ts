/**
 * The node binary's start-up pages given back (native/memory.cc, src/node/memory.ts), in a child
 * Node process of its own: its file-backed RSS falls at once, the process goes on running code of
 * the binary it gave back (the pages fault back in from the page cache), a second call is harmless,
 * and VXTUN_KEEP_STARTUP_PAGES=1 keeps them. And the default number of engines, one per core up to 4
 * but one on two cores or fewer. Needs no root; a missing addon fails these tests.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireNative } from '../../src/io/addon.js';
import { defaultWorkers } from '../../src/datapath/workers.js';
import { releaseStartupPages } from '../../src/node/memory.js';

const addonPath = join(import.meta.dirname, '..', '..', 'build', 'Release', 'vxtun_native.node');
requireNative();

interface ChildReport {
  before: number;
  after: number;
  released: { mappings: number; bytes: number };
  again: { mappings: number; bytes: number };
  digest: string;
}

/** Runs the release in a fresh `node` and reports RssFile (KiB) around it, then hashes with code it gave back. */
function releaseInChild(): ChildReport {
  const script = `
    const fs = require('node:fs');
    const rssFile = () => Number(/^RssFile:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
    const addon = require(${JSON.stringify(addonPath)});
    const before = rssFile();
    const released = addon.releaseExecutablePages();
    const after = rssFile();
    const again = addon.releaseExecutablePages();
    const digest = require('node:crypto').createHash('sha256').update(Buffer.alloc(1 << 20, 7)).digest('hex');
    process.stdout.write(JSON.stringify({ before, after, released, again, digest }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as ChildReport;
}

describe('the node binary\'s start-up pages given back', () => {
  it('leave the RSS at once, and the process goes on running the code they held', () => {
    const r = releaseInChild();
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
});

describe('the default number of engines', () => {
  it('is one per core up to 4, but one on two cores or fewer', () => {
    expect([1, 2, 3, 4, 8, 64].map((cores) => defaultWorkers(cores))).toEqual([1, 1, 3, 4, 4, 4]);
  });
});
