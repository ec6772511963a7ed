/**
 * An engine thread's scheduling policy, following its inbound load: SCHED_BATCH while the underlay
 * brings little (lone packets: a ping, a request), SCHED_OTHER while it brings a flood.
 *
 * Why (measured; docs/design/scheduling.md): SCHED_BATCH takes away wake-up preemption, which keeps an
 * idle round trip on one CPU (idle RTT p50 −15 %). Under an inbound flood it is what loses packets:
 * the receiving thread, woken by the underlay socket, waits for the running task's slice (~1.5 ms on
 * 2 CPUs) instead of preempting it, so it then writes a millisecond of arrivals (hundreds of
 * datagrams) into the TUN at once, and the pod's socket (208 KB by default: ~95 datagrams of 1350 B)
 * overflows while its reader is still asleep. At SCHED_OTHER the thread runs when woken and delivers
 * in small bursts the reader keeps up with. So the thread turns SCHED_OTHER when one inbound batch
 * carries at least `busyBytes`, and back to SCHED_BATCH after `quietMs` without such a batch.
 * The clock is read only on busy batches and on the check while SCHED_OTHER; the policy changes only
 * on those transitions (one system call each).
 */
export interface InboundSchedulingOptions {
  /** Sets the calling thread's policy; false when it may not (an operator's policy), then we stop trying. */
  setBatch: (batch: boolean) => boolean;
  /** Bytes in one inbound batch that count as load (default 32 KiB: ~24 full-size datagrams). */
  busyBytes?: number;
  /** Back to SCHED_BATCH after this long without a busy batch (default 200 ms). */
  quietMs?: number;
  now?: () => number;
}

export class InboundScheduling {
  private readonly setBatch: (batch: boolean) => boolean;
  private readonly busyBytes: number;
  private readonly quietMs: number;
  private readonly now: () => number;
  private batch = true;
  private lastBusy = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private disabled = false;
  /** Policy changes made (tests read it). */
  switches = 0;
  /**
   * What the addon's bulk inbound path (native/express.cc) reads of this: [0] 1 while the thread runs
   * SCHED_BATCH as far as this class set it (0 once disabled), [1] busyBytes. It hands a busy batch to
   * the pipeline while [0] is set, so noteInbound sees it; the busy batches it writes itself while
   * SCHED_OTHER keep the policy through `nativeBusy` (see watchNative).
   */
  readonly shared = new Float64Array(2);
  private nativeBusy: (() => number) | undefined;
  private nativeBusySeen = 0;

  constructor(opts: InboundSchedulingOptions) {
    this.setBatch = opts.setBatch;
    this.busyBytes = opts.busyBytes ?? 32 * 1024;
    this.quietMs = opts.quietMs ?? 200;
    this.now = opts.now ?? (() => performance.now());
    this.shared[0] = 1;
    this.shared[1] = this.busyBytes;
  }

  /** `busyBatches`: a count the addon raises for each busy batch it wrote without the pipeline; one that rose is load. */
  watchNative(busyBatches: () => number): void {
    this.nativeBusy = busyBatches;
    this.nativeBusySeen = busyBatches();
  }

  /** Whether the thread runs SCHED_BATCH now (as far as this class set it). */
  get isBatch(): boolean {
    return this.batch;
  }

  /** After each inbound batch: the bytes of its `count` datagrams. */
  noteInbound(sizes: ArrayLike<number>, count: number): void {
    if (this.disabled) return;
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += sizes[i]!;
    if (bytes < this.busyBytes) return;
    this.lastBusy = this.now();
    if (this.batch) {
      this.set(false);
      if (!this.batch) {
        this.timer = setInterval(() => this.check(), this.quietMs / 2);
        this.timer.unref?.();
      }
    }
  }

  /** While SCHED_OTHER: back to SCHED_BATCH once quiet for `quietMs`. Public for tests with their own clock. */
  check(): void {
    if (this.nativeBusy !== undefined) {
      const seen = this.nativeBusy();
      if (seen !== this.nativeBusySeen) {
        this.nativeBusySeen = seen;
        this.lastBusy = this.now();
      }
    }
    if (this.batch || this.now() - this.lastBusy < this.quietMs) return;
    this.set(true);
    this.stopTimer();
  }

  /** Stops the timer; the thread keeps the policy it has (the engine is going away). */
  stop(): void {
    this.stopTimer();
    this.disabled = true;
    this.shared[0] = 0;
  }

  private set(batch: boolean): void {
    let ok: boolean;
    try {
      ok = this.setBatch(batch);
    } catch {
      ok = false;
    }
    if (!ok) {
      // Someone else's policy, or no permission: leave the thread alone from now on.
      this.disabled = true;
      this.shared[0] = 0;
      this.stopTimer();
      return;
    }
    this.batch = batch;
    this.shared[0] = batch ? 1 : 0;
    this.switches++;
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
