/**
 * The express path owns what it points into: built from buffers nobody in JS keeps (test/tools/express-gc.mjs),
 * with the collector forced before every round, it keeps forwarding each packet byte for byte and counting it.
 * Without the addon's references the collector frees those buffers and the path reads freed memory
 * (rounds lost, a poll spinning on a corrupted hand-over, or a crash).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot, requirePrerequisites, toolsDir } from '../support/integration.js';
import { ExpressCounter } from '../../src/datapath/express.js';

const run = promisify(execFile);
const ROUNDS = 300;

interface GcRun {
  rounds: number;
  outOk: number;
  inOk: number;
  handedOver: number;
  wrong: unknown[];
  counters: number[];
}

async function expressUnderGc(thread: boolean): Promise<GcRun> {
  requirePrerequisites(['unshare']);
  // A network namespace of the child's own, gone when it exits: its TUN, addresses and loopback traffic with it.
  const { stdout } = await run('unshare', ['--net', process.execPath, '--expose-gc', `${toolsDir}express-gc.mjs`, `${repoRoot}build/Release/vxtun_native.node`, String(ROUNDS), thread ? '1' : '0'], { timeout: 60_000 });
  return JSON.parse(stdout) as GcRun;
}

describe('express path built from temporaries, collected before every round', () => {
  for (const thread of [false, true]) {
    it(`forwards every packet both ways and counts it (${thread ? 'express thread' : 'event loop'})`, async () => {
      const r = await expressUnderGc(thread);
      expect(r.wrong).toEqual([]);
      expect({ outOk: r.outOk, inOk: r.inOk, handedOver: r.handedOver }).toEqual({ outOk: ROUNDS, inOk: ROUNDS, handedOver: 0 });
      const c = r.counters;
      // 128 inner bytes each way: a 20-byte IPv4 header, 8 of UDP, 100 of payload.
      expect([c[ExpressCounter.TxPackets], c[ExpressCounter.TxBytes], c[ExpressCounter.RxPackets], c[ExpressCounter.RxBytes]]).toEqual([ROUNDS, ROUNDS * 128, ROUNDS, ROUNDS * 128]);
      expect([c[ExpressCounter.SendFailed], c[ExpressCounter.TunWriteFailed], c[ExpressCounter.OutHandedOver], c[ExpressCounter.InHandedOver]]).toEqual([0, 0, 0, 0]);
      expect(c[ExpressCounter.ThreadPasses]).toBe(thread ? 2 * ROUNDS : 0);
    });
  }
});
