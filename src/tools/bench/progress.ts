/** Builds and measured runs are estimated apart: how long builds really take says nothing of runs. */
export type WorkKind = 'build' | 'run';

/**
 * Live progress of `vxtun bench`: which wire, round and case, which measurement, time left. On a
 * terminal one status line is redrawn in place; otherwise (logs, CI) each build and each measured
 * run is a line. Time left is the estimate of the work not yet done, each kind scaled by how its
 * finished units really compared with their estimates, so it corrects itself as the bench goes.
 */
export class Progress {
  private readonly tty: boolean;
  private readonly started = Date.now();
  private label = '';
  private stepName = '';
  private unitStarted = Date.now();
  private unitEstimate = 0;
  private unitKind: WorkKind = 'build';
  /** Per kind: estimated seconds of the work not yet started, and estimated and real seconds of the work done. */
  private readonly work: Record<WorkKind, { remaining: number; estimatedDone: number; actualDone: number }>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream,
    estimate: Record<WorkKind, number>,
  ) {
    this.tty = (out as NodeJS.WriteStream).isTTY === true;
    this.work = {
      build: { remaining: estimate.build, estimatedDone: 0, actualDone: 0 },
      run: { remaining: estimate.run, estimatedDone: 0, actualDone: 0 },
    };
    if (this.tty) this.timer = setInterval(() => this.draw(), 500).unref();
  }

  /** A unit of work begins (a build or one measured run), expected to take `estimate` seconds. */
  start(label: string, kind: WorkKind, estimate: number): void {
    this.label = label;
    this.stepName = '';
    this.unitStarted = Date.now();
    this.unitKind = kind;
    this.unitEstimate = estimate;
    this.work[kind].remaining = Math.max(0, this.work[kind].remaining - estimate);
    this.line(`${label} · ${this.leftText()}`);
  }

  /** The unit begun last is finished: its real duration corrects the estimate of the rest of its kind. */
  done(): void {
    const w = this.work[this.unitKind];
    w.estimatedDone += this.unitEstimate;
    w.actualDone += (Date.now() - this.unitStarted) / 1000;
    this.unitEstimate = 0;
    this.draw();
  }

  /** Work that will not happen (runs of a case that could not be built): no longer counted as left. */
  skip(kind: WorkKind, estimate: number): void {
    this.work[kind].remaining = Math.max(0, this.work[kind].remaining - estimate);
  }

  step(name: string): void {
    this.stepName = name;
    this.draw();
  }

  /** Topology details from the case builder: shown only in the live line. */
  detail(_line: string): void {
    this.draw();
  }

  /** A plain line worth keeping in logs (not on a terminal, where the live line says enough). */
  info(text: string): void {
    if (!this.tty) this.line(`  ${text}`);
  }

  /** Something worth keeping (a failure, an unsupported case): always its own line. */
  note(text: string): void {
    this.line(`  ! ${text}`);
  }

  finish(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) this.out.write('\r\x1b[K');
    this.out.write(`bench finished in ${fmt((Date.now() - this.started) / 1000)}\n`);
  }

  /** Seconds left: the rest of the current unit plus the units not started, each kind scaled by its real/estimated so far. */
  secondsLeft(): number {
    const scale = (k: WorkKind): number => (this.work[k].estimatedDone > 0 ? this.work[k].actualDone / this.work[k].estimatedDone : 1);
    const inUnit = (Date.now() - this.unitStarted) / 1000;
    return Math.max(0, this.unitEstimate * scale(this.unitKind) - inUnit) + this.work.build.remaining * scale('build') + this.work.run.remaining * scale('run');
  }

  private leftText(): string {
    return `elapsed ${fmt((Date.now() - this.started) / 1000)}, ~${fmt(this.secondsLeft())} left`;
  }

  private draw(): void {
    if (!this.tty || this.label === '') return;
    const step = this.stepName ? ` · ${this.stepName}` : '';
    this.out.write(`\r\x1b[K${this.label}${step} · ${this.leftText()}`);
  }

  private line(text: string): void {
    if (this.tty) this.out.write('\r\x1b[K');
    this.out.write(`${text}\n`);
    this.draw();
  }
}

function fmt(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
