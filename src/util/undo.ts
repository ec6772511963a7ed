/**
 * What `up` did to the host, undone in reverse order on shutdown or on a failed start. A step
 * that fails is logged and the rest still run: nothing the user had is left half-changed.
 */
export class UndoStack {
  private readonly steps: Array<() => Promise<void> | void> = [];

  constructor(private readonly onError: (err: Error) => void) {}

  push(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }

  async runAll(): Promise<void> {
    while (this.steps.length) {
      try {
        await this.steps.pop()!();
      } catch (err) {
        this.onError(err as Error);
      }
    }
  }
}
