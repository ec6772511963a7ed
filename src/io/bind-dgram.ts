/**
 * Bind over Node's dgram: the readable reference path. Receives are gathered into one batch per
 * event-loop turn (libuv reads many datagrams per wake-up); sends are one syscall each and copy
 * the datagram, because libuv keeps a queued buffer until its callback runs.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4, isIPv6 } from 'node:net';
import { NO_BYTES } from '../packet/wire/view.js';
import type { Bind, Endpoint, ReceiveFn } from './bind.js';

const MAX_BATCH = 128;

/**
 * dgram resolves every send's address, through dns.lookup and a nextTick even for an IP literal,
 * which was a third of this path's garbage. Peers are IP literals: answer those at once.
 */
function literalLookup(address: string, family: dns.LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  // dgram calls lookup(address, 4, callback) for bind and send alike (lib/internal/dgram.js):
  // @types/node calls that 4 options; dns.lookup takes either.
  if (isIPv4(address)) callback(null, address, 4);
  else if (isIPv6(address)) callback(null, address, 6);
  else dns.lookup(address, family, callback);
}

export class DgramBind implements Bind {
  private onReceive: ReceiveFn | undefined;
  private readonly bufs: Buffer[] = [];
  private readonly sizes: number[] = [];
  private readonly srcs: Endpoint[] = [];
  private flushScheduled = false;
  /** Datagrams queued for the next flush: bufs[0..pending). */
  private pending = 0;
  /** The sender of the datagram before, whose Endpoint the next one from there shares. */
  private lastSrc: Endpoint = { address: '', port: -1 };
  private closed = false;
  /** Send failures by errno code (EAGAIN when the socket buffer is full, EHOSTUNREACH, ...). */
  readonly sendErrors = new Map<string, number>();

  private constructor(
    private readonly socket: dgram.Socket,
    readonly local: Endpoint,
  ) {
    socket.on('message', (msg, rinfo) => this.queue(msg, rinfo));
    socket.on('error', (err) => this.countError(err));
  }

  /** Binds address:port; rejects with the errno code (EADDRINUSE, EADDRNOTAVAIL) in the message. */
  static async open(address: string, port: number, opts: { recvBufferSize?: number; sendBufferSize?: number } = {}): Promise<DgramBind> {
    // An IPv6 underlay (a dual-stack node's flannel-v6 side) binds a udp6 socket.
    const socket = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', ipv6Only: isIPv6(address), reuseAddr: false, lookup: literalLookup });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        socket.close();
        reject(new Error(`cannot bind UDP ${address}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      };
      socket.once('error', onError);
      socket.bind({ address, port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    // Bursts of a TCP window arrive faster than one JS turn drains them: give the kernel room.
    try {
      socket.setRecvBufferSize(opts.recvBufferSize ?? 4 * 1024 * 1024);
      socket.setSendBufferSize(opts.sendBufferSize ?? 4 * 1024 * 1024);
    } catch {
      // Capped by net.core.rmem_max: the default still works, only burstier traffic drops sooner.
    }
    const a = socket.address();
    return new DgramBind(socket, { address: a.address, port: a.port });
  }

  start(onReceive: ReceiveFn): void {
    this.onReceive = onReceive;
  }

  send(bufs: Buffer[], sizes: number[], offset: number, count: number, dst: Endpoint): number {
    if (this.closed) return 0;
    let sent = 0;
    for (let i = 0; i < count; i++) {
      const copy = Buffer.from(bufs[i]!.subarray(offset, offset + sizes[i]!));
      this.socket.send(copy, dst.port, dst.address, this.onSent);
      sent++;
    }
    return sent;
  }

  private queue(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const n = this.pending++;
    this.bufs[n] = msg;
    this.sizes[n] = msg.length;
    const last = this.lastSrc;
    this.srcs[n] = last.port === rinfo.port && last.address === rinfo.address ? last : (this.lastSrc = { address: rinfo.address, port: rinfo.port });
    if (this.pending >= MAX_BATCH) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  private readonly flushLater = (): void => this.flush();

  /** Hands the datagrams queued so far to the receiver: bufs[0..n) (the arrays keep their length). */
  private flush(): void {
    this.flushScheduled = false;
    const n = this.pending;
    this.pending = 0;
    if (n > 0 && this.onReceive) this.onReceive(this.bufs, this.sizes, this.srcs, n);
    // Let the messages go without giving up the arrays' room.
    this.bufs.fill(NO_BYTES, 0, n);
  }

  private readonly onSent = (err: Error | null): void => {
    if (err) this.countError(err);
  };

  private countError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    this.sendErrors.set(code, (this.sendErrors.get(code) ?? 0) + 1);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
