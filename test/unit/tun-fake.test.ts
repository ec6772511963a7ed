import { describe, expect, it } from 'vitest';
import { createFakeTun } from '../../src/io/tun-fake.js';

const turn = () => new Promise<void>((r) => setImmediate(r));
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await turn();
};

/** A minimal IPv4 packet of `len` bytes whose last byte is `tag`. */
function ipv4(len: number, tag: number): Buffer {
  const p = Buffer.alloc(len);
  p[0] = 0x45;
  p.writeUInt16BE(len, 2);
  p[len - 1] = tag;
  return p;
}

describe('fake TUN', () => {
  it('has the name and mtu it was given', () => {
    expect(createFakeTun().device).toMatchObject({ name: 'fake0', mtu: 1450 });
    expect(createFakeTun('t1', 1400).device).toMatchObject({ name: 't1', mtu: 1400 });
  });

  it('signals readiness once per turn and reads injected packets in batches, at offset', async () => {
    const fake = createFakeTun();
    const offset = 22;
    const bufs = [Buffer.alloc(offset + 1450, 0xcc), Buffer.alloc(offset + 1450, 0xcc)];
    const sizes = [0, 0];
    const batches: number[][] = [];
    fake.device.start(() => {
      const n = fake.device.read(bufs, sizes, offset);
      const tags: number[] = [];
      for (let i = 0; i < n; i++) tags.push(bufs[i]![offset + sizes[i]! - 1]!);
      batches.push(tags);
      for (const b of bufs) expect(b.subarray(0, offset).every((x) => x === 0xcc)).toBe(true);
    });
    await turns(3);
    expect(batches).toEqual([]); // nothing injected: no callback

    for (let t = 1; t <= 5; t++) fake.inject(ipv4(20 + t, t));
    expect(fake.pending).toBe(5);
    expect(batches).toEqual([]); // never synchronously from inject
    await turns(5);
    expect(batches).toEqual([[1, 2], [3, 4], [5]]); // level-triggered: called again until drained
    expect(fake.pending).toBe(0);
    await turns(3);
    expect(batches.length).toBe(3);
    fake.device.close();
  });

  it('copies on inject, truncates to the room, returns 0 when empty', () => {
    const fake = createFakeTun();
    const p = ipv4(100, 9);
    fake.inject(p);
    p.fill(0); // the queued copy is unaffected
    const small = [Buffer.alloc(10 + 40)];
    const sizes = [0];
    expect(fake.device.read(small, sizes, 10)).toBe(1);
    expect(sizes[0]).toBe(40);
    expect(small[0]![10]).toBe(0x45);
    expect(fake.device.read(small, sizes, 10)).toBe(0);
  });

  it('packets injected before start are signalled on start', async () => {
    const fake = createFakeTun();
    fake.inject(ipv4(20, 1));
    let calls = 0;
    fake.device.start(() => {
      calls++;
      fake.device.read([Buffer.alloc(100)], [0], 0);
    });
    await turns(2);
    expect(calls).toBe(1);
    expect(() => fake.device.start(() => {})).toThrow(/already started/);
  });

  it('records copies of written packets, calls onWrite, refuses non-IP packets', () => {
    const fake = createFakeTun();
    const seen: Buffer[] = [];
    fake.onWrite = (p) => seen.push(p);
    const off = 4;
    const a = Buffer.alloc(off + 30, 0xee);
    ipv4(30, 1).copy(a, off);
    const junk = Buffer.alloc(off + 10, 0); // first nibble 0: the kernel says EINVAL
    const b = Buffer.alloc(off + 40, 0xee);
    b[off] = 0x60; // IPv6
    const c = Buffer.alloc(off + 30, 0xee);
    ipv4(30, 3).copy(c, off);
    expect(fake.device.write([a, junk, b, c], [30, 10, 40, 30], off, 3)).toBe(2);
    expect(fake.written.map((p) => p.length)).toEqual([30, 40]);
    expect(fake.written[0]!.equals(a.subarray(off, off + 30))).toBe(true);
    expect(fake.refused.length).toBe(1);
    expect(seen).toEqual(fake.written);
    a.fill(0);
    expect(fake.written[0]![0]).toBe(0x45); // a copy, not a view
    expect(() => fake.device.write([a], [40], off, 1)).toThrow(RangeError);
  });

  it('close stops readiness, drops queued packets, later inject/read/write are no-ops', async () => {
    const fake = createFakeTun();
    let calls = 0;
    fake.device.start(() => calls++);
    fake.inject(ipv4(20, 1));
    fake.device.close();
    fake.device.close(); // idempotent
    await turns(3);
    expect(calls).toBe(0);
    fake.inject(ipv4(20, 2));
    expect(fake.pending).toBe(0);
    expect(fake.device.read([Buffer.alloc(64)], [0], 0)).toBe(0);
    expect(fake.device.write([ipv4(20, 3)], [20], 0, 1)).toBe(0);
    expect(() => fake.device.start(() => {})).toThrow(/after close/);
  });
});
