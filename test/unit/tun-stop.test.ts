/**
 * A stopped pipeline's TUN device must go quiet: Pipeline.stop calls stopReading, after which the
 * device calls its reader no more — neither from the poll nor from the setImmediate it uses to come
 * back for a super-packet left half-read in scratch (the pipeline no longer reads it, so it stays).
 * The addon's poll and offload read are replaced by stand-ins (restored after); no device is opened.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { requireNative, type NativeAddon } from '../../src/io/addon.js';
import { adoptLinuxTun } from '../../src/io/tun-linux.js';

const native = requireNative() as NativeAddon & Record<string, unknown>;
const saved: Record<string, unknown> = {};
function stub(name: keyof NativeAddon, fn: unknown): void {
  if (!(name in saved)) saved[name] = native[name];
  (native as Record<string, unknown>)[name] = fn;
}
afterEach(() => {
  for (const [name, fn] of Object.entries(saved)) (native as Record<string, unknown>)[name] = fn;
  for (const k of Object.keys(saved)) delete saved[k];
});

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('LinuxTun.stopReading', () => {
  it('ends the callbacks, also the ones that come back for a super-packet left in scratch', async () => {
    let poll: (() => void) | undefined;
    let pollStops = 0;
    stub('pollStart', (_fd: number, cb: () => void) => {
      poll = cb;
      return {};
    });
    stub('pollStop', () => void pollStops++);
    stub('expressStop', () => {});
    stub('close', () => {});
    // Every read fills the batch and leaves part of a super-packet waiting in the queue.
    stub('tunQueueOpen', () => ({}));
    stub('tunQueueRead', (_queue: unknown, bufs: Uint8Array[], _offset: number, sizes: Int32Array) => {
      for (let i = 0; i < bufs.length; i++) sizes[i] = 100;
      return bufs.length;
    });
    stub('tunQueuePending', () => true);
    const tun = adoptLinuxTun(1000, 'stub0', 1450, { vnetHdr: true, offload: true, uso: false });
    const bufs = Array.from({ length: 4 }, () => Buffer.alloc(2000));
    const sizes = [0, 0, 0, 0];
    let reading = true;
    let calls = 0;
    tun.start(() => {
      calls++;
      if (reading) tun.read(bufs, sizes, 22);
    });
    poll!();
    await tick(20);
    const whileReading = calls;
    expect(whileReading).toBeGreaterThan(2); // the pending part brings the reader back, turn after turn
    reading = false; // Pipeline.stop: reads nothing more ...
    tun.stopReading!(); // ... and stops the device's readiness
    const atStop = calls;
    await tick(50);
    expect(calls - atStop).toBeLessThanOrEqual(1); // at most the turn already scheduled
    expect(pollStops).toBe(1);
    tun.close();
  });
});
