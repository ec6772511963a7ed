/**
 * The node side of `vxtun trace`: {"cmd":"trace","filter":{...},"bytes":bool,"maxRate":n} on the control
 * socket turns that connection into a stream — one {"hello":NodeInfo} line, then one Journey per
 * line until the client disconnects. The engine's observer is attached while at least one client
 * listens and detached when the last one leaves, so an idle node pays nothing.
 */
import { StreamReply } from '../control/socket.js';
import { ObserverSet, type Observer } from '../datapath/observe.js';
import { JourneyCollector, DEFAULT_MAX_JOURNEYS_PER_SECOND, type Journey, type NodeInfo } from './journey.js';
import { validateFilter, FilterError, type TraceFilter } from './filter.js';

export interface Observable {
  setObserver(observer: Observer | undefined): void;
}

export class TraceHub {
  private readonly observers = new ObserverSet();

  constructor(
    private readonly engine: Observable,
    private readonly node: () => NodeInfo,
  ) {}

  get listeners(): number {
    return this.observers.size;
  }

  /** Subscribes a consumer in-process (tests, the web view inside `vxtun up`); returns the unsubscribe. */
  subscribe(opts: { filter?: TraceFilter; bytes?: boolean; maxJourneysPerSecond?: number }, emit: (j: Journey) => void): () => void {
    const collector = new JourneyCollector(this.node(), { ...opts, emit });
    const remove = this.observers.add(collector.observer);
    this.engine.setObserver(this.observers.dispatch);
    return () => {
      remove();
      this.engine.setObserver(this.observers.dispatch);
    };
  }

  /** The control-socket command: a StreamReply, or an error reply for a bad filter. */
  handle(request: { [k: string]: unknown }): StreamReply | { error: string } {
    let filter: TraceFilter;
    try {
      filter = validateFilter((request.filter ?? {}) as TraceFilter);
    } catch (err) {
      if (err instanceof FilterError) return { error: err.message };
      throw err;
    }
    const maxRate = request.maxRate ?? DEFAULT_MAX_JOURNEYS_PER_SECOND;
    if (typeof maxRate !== 'number' || !Number.isInteger(maxRate) || maxRate < 1) return { error: `maxRate: "${String(maxRate)}" is not a positive whole number of journeys per second` };
    return new StreamReply((send) => {
      let lost = 0;
      send({ hello: this.node(), filter });
      return this.subscribe({ filter, bytes: request.bytes === true, maxJourneysPerSecond: maxRate }, (j) => {
        // a client that cannot keep up loses journeys (counted), never the node's memory
        if (!send(lost > 0 ? { ...j, untraced: (j.untraced ?? 0) + lost } : j)) lost++;
        else lost = 0;
      });
    });
  }
}
