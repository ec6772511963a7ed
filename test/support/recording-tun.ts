/**
 * A TUN for engine tests: records copies of what the engine writes into it (decapsulated packets,
 * ICMP answers); reads hand over nothing.
 */
import type { TunDevice } from '../../src/io/tun-device.js';

export class RecordingTun implements TunDevice {
  readonly name = 'rec0';
  readonly written: Buffer[] = [];
  constructor(readonly mtu: number) {}
  read(): number {
    return 0;
  }
  write(bufs: Buffer[], sizes: number[], offset: number, count: number): number {
    for (let i = 0; i < count; i++) this.written.push(Buffer.from(bufs[i]!.subarray(offset, offset + sizes[i]!)));
    return count;
  }
  start(): void {}
  close(): void {}
}
