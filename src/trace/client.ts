/**
 * The client side of `vxtun trace`: subscribes to one or more nodes' control sockets and turns
 * their journeys into trace items. With two or more nodes it follows a packet across them: the
 * sender's udp-send and the receiver's udp-recv carry the same UDP payload, so the same `wire`
 * hash; such a pair becomes one story. A journey with no partner within the window prints alone.
 */
import { controlStream } from '../control/socket.js';
import type { Journey, NodeInfo } from './journey.js';
import type { TraceFilter } from './filter.js';
import type { TraceItem } from './printer.js';

export interface TraceSource {
  socket: string;
  node: NodeInfo;
}

export class Stitcher {
  private readonly waiting = new Map<string, { j: Journey; source: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly sources: number,
    private readonly emit: (item: TraceItem) => void,
    private readonly windowMs = 400,
  ) {}

  push(j: Journey, source: number): void {
    if (this.sources < 2 || j.wire === undefined) {
      this.emit({ kind: 'journey', journey: j });
      return;
    }
    const other = this.waiting.get(j.wire);
    if (other && other.source !== source && other.j.direction !== j.direction) {
      clearTimeout(other.timer);
      this.waiting.delete(j.wire);
      const [sender, receiver] = j.direction === 'out' ? [j, other.j] : [other.j, j];
      this.emit({ kind: 'story', sender, receiver, wire: j.wire });
      return;
    }
    if (other) {
      // a duplicate datagram: let the older one go alone
      clearTimeout(other.timer);
      this.emit({ kind: 'journey', journey: other.j });
    }
    const wire = j.wire;
    const timer = setTimeout(() => {
      this.waiting.delete(wire);
      this.emit({ kind: 'journey', journey: j });
    }, this.windowMs);
    this.waiting.set(wire, { j, source, timer });
  }

  /** Emits whatever still waits for a partner. */
  drain(): void {
    for (const [wire, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(wire);
      this.emit({ kind: 'journey', journey: w.j });
    }
  }
}

export interface TraceSessionOptions {
  sockets: string[];
  filter?: TraceFilter;
  bytes?: boolean;
  /** Journeys per second each node sends at most (its default when unset). */
  maxRate?: number;
  onItem: (item: TraceItem) => void;
  /** A node went away (the session ends when all have). */
  onEnd?: (socket: string, err?: Error) => void;
  windowMs?: number;
}

/** Connected trace streams; resolves once every node has said hello (or rejects with the node's error). */
export class TraceSession {
  readonly sources: TraceSource[] = [];
  private readonly closers: Array<() => void> = [];
  private readonly stitcher: Stitcher;
  private open = 0;
  readonly ended: Promise<void>;
  private resolveEnded!: () => void;

  private constructor(private readonly opts: TraceSessionOptions) {
    this.stitcher = new Stitcher(opts.sockets.length, opts.onItem, opts.windowMs);
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  static async connect(opts: TraceSessionOptions): Promise<TraceSession> {
    const s = new TraceSession(opts);
    try {
      for (let i = 0; i < opts.sockets.length; i++) await s.attach(i, opts.sockets[i]!);
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  private attach(index: number, socket: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let hello = false;
      controlStream(
        socket,
        { cmd: 'trace', filter: this.opts.filter ?? {}, bytes: this.opts.bytes === true, ...(this.opts.maxRate !== undefined ? { maxRate: this.opts.maxRate } : {}) },
        (v) => {
          const value = v as { hello?: NodeInfo; error?: string } & Journey;
          if (!hello) {
            if (value.error !== undefined) return reject(new Error(`${socket}: ${value.error}`));
            if (value.hello === undefined) return reject(new Error(`${socket}: the node does not support trace (no hello)`));
            hello = true;
            this.sources[index] = { socket, node: value.hello };
            this.open++;
            return resolve();
          }
          this.stitcher.push(value, index);
        },
        (err) => {
          if (!hello) return reject(err ?? new Error(`${socket}: closed before hello`));
          this.opts.onEnd?.(socket, err);
          if (--this.open === 0) {
            this.stitcher.drain();
            this.resolveEnded();
          }
        },
      )
        .then((h) => this.closers.push(() => h.close()))
        .catch(reject);
    });
  }

  close(): void {
    for (const c of this.closers) c();
    this.closers.length = 0;
    this.stitcher.drain();
    this.resolveEnded();
  }
}
