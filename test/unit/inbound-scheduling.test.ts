// An engine thread leaves SCHED_BATCH while the underlay floods it and goes back once quiet
// (src/datapath/inbound-scheduling.ts): the switching rule with a test clock, the pipeline feeding it
// every inbound batch, and the addon's per-thread call against /proc/thread-self.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InboundScheduling } from '../../src/datapath/inbound-scheduling.js';
import { Engine } from '../../src/datapath/engine.js';
import { requireNative } from '../../src/io/addon.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import type { TunDevice } from '../../src/io/tun-device.js';
import type { Bind, Endpoint, ReceiveFn } from '../../src/io/bind.js';

/** A policy setter that records its calls, answering `ok`. */
function recorder(ok: () => boolean = () => true): { calls: boolean[]; setBatch: (b: boolean) => boolean } {
  const calls: boolean[] = [];
  return { calls, setBatch: (b) => (calls.push(b), ok()) };
}

const full = (n: number): number[] => new Array<number>(n).fill(1400);

describe('InboundScheduling', () => {
  it('switches to SCHED_OTHER on the first batch of busyBytes, once, and back after quietMs without one', () => {
    let now = 1000;
    const r = recorder();
    const s = new InboundScheduling({ setBatch: r.setBatch, busyBytes: 32 * 1024, quietMs: 200, now: () => now });
    s.noteInbound(full(23), 23); // 32200 B: below
    s.noteInbound([64, 64, 64], 3);
    expect(r.calls).toEqual([]);
    expect(s.isBatch).toBe(true);
    s.noteInbound(full(24), 24); // 33600 B
    expect(r.calls).toEqual([false]);
    expect(s.isBatch).toBe(false);
    now += 150;
    s.noteInbound(full(64), 64); // still busy: no second call, the quiet time starts again
    now += 150;
    s.check(); // 150 ms since the last busy batch
    expect(r.calls).toEqual([false]);
    s.noteInbound([100], 1); // light traffic does not hold the thread at SCHED_OTHER
    now += 60;
    s.check();
    expect(r.calls).toEqual([false, true]);
    expect(s.isBatch).toBe(true);
    expect(s.switches).toBe(2);
    s.stop();
  });

  it('counts only the batch `count` says, not stale entries past it', () => {
    const r = recorder();
    const s = new InboundScheduling({ setBatch: r.setBatch, busyBytes: 10_000, now: () => 0 });
    s.noteInbound([1000, 1000, 60_000, 60_000], 2);
    expect(r.calls).toEqual([]);
    s.stop();
  });

  it('leaves the thread alone for good once the setter refuses (a policy someone else chose) or throws', () => {
    const refused = recorder(() => false);
    const a = new InboundScheduling({ setBatch: refused.setBatch, busyBytes: 1, now: () => 0 });
    a.noteInbound([10], 1);
    a.noteInbound([10], 1);
    expect(refused.calls).toEqual([false]);
    expect(a.isBatch).toBe(true);
    expect(a.switches).toBe(0);
    let thrown = 0;
    const b = new InboundScheduling({
      setBatch: () => {
        thrown++;
        throw new Error('EPERM');
      },
      busyBytes: 1,
      now: () => 0,
    });
    b.noteInbound([10], 1);
    b.noteInbound([10], 1);
    expect(thrown).toBe(1);
  });

  it('goes back to SCHED_BATCH by its own timer when traffic stops altogether', async () => {
    const r = recorder();
    const s = new InboundScheduling({ setBatch: r.setBatch, busyBytes: 1, quietMs: 40 });
    s.noteInbound([10], 1);
    expect(r.calls).toEqual([false]);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.calls).toEqual([false, true]);
    s.stop();
  });

  it('tells the addon its policy and busy size (shared), and counts the busy batches the addon wrote itself as load', () => {
    let now = 1000;
    let nativeBusy = 5;
    const r = recorder();
    const s = new InboundScheduling({ setBatch: r.setBatch, busyBytes: 20_000, quietMs: 200, now: () => now });
    s.watchNative(() => nativeBusy);
    expect(Array.from(s.shared)).toEqual([1, 20_000]); // SCHED_BATCH: the addon hands a busy batch over
    s.noteInbound(full(16), 16); // the batch it handed over
    expect(Array.from(s.shared)).toEqual([0, 20_000]);
    // From now on the addon writes the busy batches itself: each check that sees its count rise is load.
    for (let k = 0; k < 5; k++) {
      now += 150;
      nativeBusy += 3;
      s.check();
    }
    expect(r.calls).toEqual([false]);
    now += 150;
    s.check(); // the count did not rise: quiet for 150 ms
    expect(r.calls).toEqual([false]);
    now += 60;
    s.check();
    expect(r.calls).toEqual([false, true]);
    expect(s.shared[0]).toBe(1);
    s.stop();
    expect(s.shared[0]).toBe(0); // stopped: never hand a batch over for its sake again
    const refused = new InboundScheduling({ setBatch: () => false, busyBytes: 1, now: () => 0 });
    refused.noteInbound([10], 1);
    expect(refused.shared[0]).toBe(0); // someone else's policy: the addon need not wait for this class
  });

  it('stop() ends the timer: no switch back afterwards, and no more switches at all', async () => {
    const r = recorder();
    const s = new InboundScheduling({ setBatch: r.setBatch, busyBytes: 1, quietMs: 20 });
    s.noteInbound([10], 1);
    s.stop();
    await new Promise((res) => setTimeout(res, 100));
    s.noteInbound([10], 1);
    expect(r.calls).toEqual([false]);
  });
});

describe('the pipeline feeds it every inbound batch', () => {
  it('a batch of full-size datagrams switches the thread, a smaller one does not', () => {
    let deliver: ReceiveFn | undefined;
    const tun: TunDevice = { name: 'rec0', mtu: 1450, read: () => 0, write: (_b, _s, _o, count) => count, start: () => {}, close: () => {} };
    const bind: Bind = {
      local: { address: '198.18.0.1', port: 8472 },
      send: (_b, _s, _o, count) => count,
      start: (onReceive) => {
        deliver = onReceive;
      },
      close: async () => {},
    };
    const r = recorder();
    const sched = new InboundScheduling({ setBatch: r.setBatch, now: () => 0 });
    const e = new Engine(tun, bind, { vni: 1, vtepMac: macFromString('0a:58:0a:f4:01:00'), vtepIp: ipv4FromString('10.244.1.0'), localSubnets: [{ family: 4, addr: ipv4FromString('10.244.1.0'), prefixLen: 24 }], port: 8472, maxInnerSize: 1450, tunMtu: 1450, inboundScheduling: sched });
    e.start();
    const src: Endpoint = { address: '198.18.0.2', port: 40000 };
    // Garbage datagrams (dropped by decap, counted): the load is what arrived, not what was delivered.
    const bufs = Array.from({ length: 32 }, () => Buffer.alloc(1400, 0xee));
    deliver!(bufs, full(8), new Array<Endpoint>(32).fill(src), 8);
    expect(r.calls).toEqual([]);
    deliver!(bufs, full(32), new Array<Endpoint>(32).fill(src), 32);
    expect(r.calls).toEqual([false]);
    expect(e.counters.snapshot().dropped).not.toEqual({});
    e.stop();
  });
});

/** Field 41 (policy) of /proc/thread-self/stat: 0 SCHED_OTHER, 3 SCHED_BATCH. */
function ownPolicy(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
}

describe('native setThreadPolicy', () => {
  const native = requireNative();

  it('sets the calling thread only, both ways, and checks its argument', () => {
    const before = ownPolicy();
    try {
      expect(native.setThreadPolicy(true)).toBe(true);
      expect(ownPolicy()).toBe(3);
      expect(native.setThreadPolicy(false)).toBe(true);
      expect(ownPolicy()).toBe(0);
      expect(() => (native.setThreadPolicy as (x: unknown) => boolean)('yes')).toThrow(/batch must be a boolean/);
    } finally {
      native.setThreadPolicy(before === 3);
    }
  });

  it('leaves a thread under a policy someone else chose (chrt -i here) alone: false, unchanged', () => {
    const before = ownPolicy();
    const tid = readFileSync('/proc/thread-self/stat', 'utf8').split(' ')[0]!;
    try {
      execFileSync('chrt', ['-i', '-p', '0', tid]);
      expect(ownPolicy()).toBe(5); // SCHED_IDLE
      expect(native.setThreadPolicy(false)).toBe(false);
      expect(native.setThreadPolicy(true)).toBe(false);
      expect(ownPolicy()).toBe(5);
    } finally {
      execFileSync('chrt', [before === 3 ? '-b' : '-o', '-p', '0', tid]);
    }
    expect(ownPolicy()).toBe(before);
  });
});
