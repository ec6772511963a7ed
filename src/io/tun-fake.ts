/**
 * An in-process TUN device for tests, in the spirit of wireguard-go's tun/tuntest: `inject` plays the
 * kernel routing a packet into the device, `written` collects what the engine wrote to it.
 *
 * It behaves like the Linux device where that matters to an engine: reads return one packet per
 * buffer, truncated to the buffer's room; readiness is level-triggered (onReadable fires again on
 * a later turn while packets remain unread); a write of something that is not IPv4/IPv6 (first
 * nibble not 4 or 6, or empty) is refused like the kernel's EINVAL — skipped, not counted, kept in `refused`.
 */
import type { TunDevice } from './tun-device.js';

export interface FakeTun {
  device: TunDevice;
  /** Queues a copy of `packet` as if the kernel routed it into the TUN. Ignored after close. */
  inject(packet: Buffer): void;
  /** Copies of the packets the engine wrote (and the device accepted). */
  written: Buffer[];
  /** Copies of the packets the device refused (not IPv4/IPv6). */
  refused: Buffer[];
  /** Called with each accepted packet (the copy in `written`). */
  onWrite?: (p: Buffer) => void;
  /** Packets injected but not read yet. */
  readonly pending: number;
}

export function createFakeTun(name = 'fake0', mtu = 1450): FakeTun {
  const queue: Buffer[] = [];
  let onReadable: (() => void) | undefined;
  let scheduled: NodeJS.Immediate | undefined;
  let closed = false;

  const fire = (): void => {
    scheduled = undefined;
    if (closed || onReadable === undefined || queue.length === 0) return;
    onReadable();
    schedule(); // level-triggered: still readable after the callback → called again next turn
  };
  const schedule = (): void => {
    if (scheduled === undefined && !closed && onReadable !== undefined && queue.length > 0) {
      scheduled = setImmediate(fire);
    }
  };

  const device: TunDevice = {
    name,
    mtu,
    read(bufs, sizes, offset) {
      if (closed) return 0;
      let n = 0;
      while (n < bufs.length && queue.length > 0) {
        const buf = bufs[n]!;
        const room = buf.length - offset;
        if (room <= 0) throw new RangeError(`fake tun read: offset ${offset} leaves no room in bufs[${n}]`);
        const p = queue.shift()!;
        const len = Math.min(room, p.length);
        p.copy(buf, offset, 0, len);
        sizes[n] = len;
        n++;
      }
      return n;
    },
    write(bufs, sizes, offset, count, _gsoSizes, refused) {
      if (closed) {
        refused?.fill(1, 0, count);
        return 0;
      }
      if (count > bufs.length) throw new RangeError(`fake tun write: count ${count} > ${bufs.length} buffers`);
      let accepted = 0;
      for (let i = 0; i < count; i++) {
        const size = sizes[i]!;
        const buf = bufs[i]!;
        if (offset + size > buf.length) throw new RangeError(`fake tun write: sizes[${i}] exceeds bufs[${i}]`);
        const copy = Buffer.from(buf.subarray(offset, offset + size));
        const version = size > 0 ? copy[0]! >> 4 : 0;
        if (version !== 4 && version !== 6) {
          fake.refused.push(copy);
          if (refused !== undefined) refused[i] = 1;
          continue;
        }
        fake.written.push(copy);
        accepted++;
        fake.onWrite?.(copy);
      }
      return accepted;
    },
    start(cb) {
      if (closed) throw new Error(`tun ${name}: start after close`);
      if (onReadable !== undefined) throw new Error(`tun ${name}: already started`);
      onReadable = cb;
      schedule();
    },
    close() {
      closed = true;
      onReadable = undefined;
      queue.length = 0;
      if (scheduled !== undefined) clearImmediate(scheduled);
      scheduled = undefined;
    },
  };

  const fake: FakeTun = {
    device,
    inject(packet) {
      if (closed) return;
      queue.push(Buffer.from(packet));
      schedule();
    },
    written: [],
    refused: [],
    get pending() {
      return queue.length;
    },
  };
  return fake;
}
