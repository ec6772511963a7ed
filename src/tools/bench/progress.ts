/**
 * Live progress of `vxtun bench`: which case, which run, which measurement, time left. On a
 * terminal one status line is redrawn in place; otherwise (logs, CI) each case and run is a line.
 */
export class Progress {
  private readonly tty: boolean;
  private readonly started = Date.now();
  private caseIndex = 0;
  private caseCount = 0;
  private caseId = '';
  private caseStarted = Date.now();
  private run = 0;
  private runs = 0;
  private stepName = '';
  /** Seconds one case is expected to take: the estimate at first, then the mean of finished cases. */
  private perCase: number;
  private finished: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream,
    totalEstimate: number,
    caseCount = 1,
  ) {
    this.tty = (out as NodeJS.WriteStream).isTTY === true;
    this.perCase = totalEstimate / Math.max(1, caseCount);
    if (this.tty) this.timer = setInterval(() => this.draw(), 500).unref();
  }

  setCase(index: number, count: number, id: string): void {
    this.caseIndex = index;
    this.caseCount = count;
    this.caseId = id;
    this.caseStarted = Date.now();
    this.run = 0;
    this.runs = 0;
    this.stepName = '';
    this.line(`[${index}/${count}] ${id} · ${this.leftText()}`);
  }

  setRun(run: number, runs: number): void {
    this.run = run;
    this.runs = runs;
    if (!this.tty) this.line(`[${this.caseIndex}/${this.caseCount}] ${this.caseId} run ${run}/${runs} · ${this.leftText()}`);
  }

  step(name: string): void {
    this.stepName = name;
    this.draw();
  }

  /** Topology details from the case builder: shown only in the live line. */
  detail(_line: string): void {
    this.draw();
  }

  runDone(): void {
    this.draw();
  }

  caseDone(spentSeconds: number, _estimate: number): void {
    this.finished.push(spentSeconds);
    this.perCase = this.finished.reduce((a, b) => a + b, 0) / this.finished.length;
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

  /** Seconds left: the rest of this case plus the cases after it. */
  secondsLeft(): number {
    const inCase = (Date.now() - this.caseStarted) / 1000;
    return Math.max(0, this.perCase - inCase) + Math.max(0, this.caseCount - this.caseIndex) * this.perCase;
  }

  private leftText(): string {
    return `elapsed ${fmt((Date.now() - this.started) / 1000)}, ~${fmt(this.secondsLeft())} left`;
  }

  private draw(): void {
    if (!this.tty || this.caseCount === 0) return;
    const run = this.runs > 0 ? ` run ${this.run}/${this.runs}` : '';
    const step = this.stepName ? ` · ${this.stepName}` : '';
    this.out.write(`\r\x1b[K[${this.caseIndex}/${this.caseCount}] ${this.caseId}${run}${step} · ${this.leftText()}`);
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
