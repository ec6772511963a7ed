/**
 * In-process underlay for tests, in the spirit of wireguard-go's bindtest: binds created on one
 * FakeNetwork deliver to each other by address:port, asynchronously, with copies of the bytes.
 * `tap` sees every datagram, so tests can assert bytes on the wire; `inject` plays a remote host.
 */
import type { Bind, Endpoint, ReceiveFn } from './bind.js';

export interface FakeDatagram {
  src: Endpoint;
  dst: Endpoint;
  bytes: Buffer;
}

export class FakeNetwork {
  private readonly binds = new Map<string, FakeBind>();
  readonly log: FakeDatagram[] = [];
  tap: ((d: FakeDatagram) => void) | undefined;

  bind(address: string, port: number): FakeBind {
    const key = `${address}:${port}`;
    if (this.binds.has(key)) throw new Error(`fake bind ${key}: EADDRINUSE`);
    const b = new FakeBind(this, { address, port });
    this.binds.set(key, b);
    return b;
  }

  /** Delivers a datagram as if `src` had sent it (used by tests to play a remote host). */
  inject(src: Endpoint, dst: Endpoint, bytes: Buffer): void {
    this.deliver({ src, dst, bytes: Buffer.from(bytes) });
  }

  deliver(d: FakeDatagram): void {
    this.log.push(d);
    this.tap?.(d);
    const target = this.binds.get(`${d.dst.address}:${d.dst.port}`);
    if (target) setImmediate(() => target.receive(d));
  }

  unbind(b: FakeBind): void {
    this.binds.delete(`${b.local.address}:${b.local.port}`);
  }
}

export class FakeBind implements Bind {
  private onReceive: ReceiveFn | undefined;
  private closed = false;

  constructor(
    private readonly network: FakeNetwork,
    readonly local: Endpoint,
  ) {}

  start(onReceive: ReceiveFn): void {
    this.onReceive = onReceive;
  }

  send(bufs: Buffer[], sizes: number[], offset: number, count: number, dst: Endpoint): number {
    if (this.closed) return 0;
    for (let i = 0; i < count; i++) {
      const bytes = Buffer.from(bufs[i]!.subarray(offset, offset + sizes[i]!));
      this.network.deliver({ src: this.local, dst, bytes });
    }
    return count;
  }

  receive(d: FakeDatagram): void {
    if (!this.closed) this.onReceive?.([d.bytes], [d.bytes.length], [d.src], 1);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.network.unbind(this);
  }
}
