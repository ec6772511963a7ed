/**
 * The express path's side of observation. While a trace watches, native/express.cc keeps forwarding
 * lone packets and records each one it forwarded (native TraceLog: which way, the datagram, the peer
 * or the sender, two CLOCK_MONOTONIC times (the observations' own clock, util/clock.ts), whether the
 * kernel took it). This tap drains those records
 * on the event loop (on a short timer while watched, and before every pipeline batch so the order
 * holds) and reports each as the observations the pipeline makes for the same packet, marked
 * `express`: a trace, a pcapng and the web view see every packet whichever code forwarded it.
 */
import type { Endpoint } from '../packet/endpoint.js';
import type { RouteTable, Vtep } from '../packet/routes.js';
import { ipv4ToString } from '../packet/wire/ipv4.js';
import { DropReason } from '../packet/counters.js';
import type { Observer } from './observe.js';
import { monotonicNsToMs } from '../util/clock.js';

/** Bytes of a record head (native TraceRecordHead, little-endian on the hosts the addon builds for). */
export const EXPRESS_RECORD_HEAD = 32;
/** VXLAN header + inner Ethernet: where the inner packet starts in a recorded datagram. */
const INNER = 22;

/** How often a watched engine drains its express records when no pipeline batch does it first. */
export const EXPRESS_DRAIN_INTERVAL_MS = 10;

/** One drain of the native log (NativeAddon.expressRecords). */
export interface ExpressRecords {
  records: Buffer;
  lost: number;
}

/** What the observations need from the engine at the time they are reported. */
export interface ExpressTapContext {
  routes(): RouteTable<Vtep>;
  /** Our socket's end for an outgoing datagram (the flow-hashed source port it left from). */
  sentFrom(buf: Buffer, offset: number, length: number): Endpoint;
  /** Our socket's end for an incoming datagram. */
  local(): Endpoint;
}

/**
 * The peer a recorded outbound datagram went to: the route table's own target when it still names
 * the same VTEP (so the route prefix is known), else one made from the record (the table changed since).
 */
function peerOf(ctx: ExpressTapContext, dgram: Buffer, innerDst: number, endpoint: Endpoint): { peer: Vtep; route: string | undefined } {
  const routes = ctx.routes();
  const vni = dgram.readUIntBE(4, 3);
  const mac = dgram.subarray(8, 14);
  const t = routes.lookup4(innerDst);
  if (t !== undefined && t.vni === vni && t.endpoint.address === endpoint.address && t.endpoint.port === endpoint.port && mac.equals(t.vtepMac)) {
    return { peer: t, route: routes.prefixOf(t) };
  }
  return { peer: { vni, vtepMac: Buffer.from(mac), endpoint }, route: undefined };
}

/**
 * Reports every record as the pipeline's observations of that packet. `lost` (records that did not
 * fit the native log) rides on the first observation as `unrecorded`, so the trace says how many
 * packets it could not show.
 */
export function replayExpressRecords({ records, lost }: ExpressRecords, ctx: ExpressTapContext, obs: Observer): number {
  const at = monotonicNsToMs;
  let unrecorded = lost;
  let n = 0;
  for (let pos = 0; pos + EXPRESS_RECORD_HEAD <= records.length; ) {
    const seen = at(records.readBigUInt64LE(pos));
    const done = at(records.readBigUInt64LE(pos + 8));
    const length = records.readUInt32LE(pos + 16);
    const other: Endpoint = { address: ipv4ToString(records.readUInt32LE(pos + 20)), port: records.readUInt16LE(pos + 24) };
    const inbound = records[pos + 26] === 1;
    const ok = records[pos + 27] === 1;
    const start = pos + EXPRESS_RECORD_HEAD;
    pos = start + length;
    if (pos > records.length || length < INNER + 20) break; // the addon writes whole records: not reached
    // A view of this drain's buffer (a fresh copy from the addon): a consumer may keep it.
    const dgram = records.subarray(start, pos);
    const first = unrecorded > 0 ? { unrecorded } : {};
    unrecorded = 0;
    n++;
    if (inbound) {
      const local = ctx.local();
      const innerLength = dgram.readUInt16BE(INNER + 2); // the express path takes IPv4 only
      obs({ point: 'udp-recv', direction: 'in', buf: dgram, offset: 0, length, verdict: 'ok', local, remote: other, at: seen, express: true, ...first });
      obs({ point: 'decap', direction: 'in', buf: dgram, offset: 0, length, verdict: 'ok', remote: other, at: seen, express: true });
      obs({ point: 'tun-write', direction: 'in', buf: dgram, offset: INNER, length: innerLength, verdict: ok ? 'forwarded' : DropReason.TunWriteFailed, at: done, express: true });
    } else {
      const { peer, route } = peerOf(ctx, dgram, dgram.readUInt32BE(INNER + 16), other);
      const inner = length - INNER;
      obs({ point: 'tun-read', direction: 'out', buf: dgram, offset: INNER, length: inner, verdict: 'ok', at: seen, express: true, ...first });
      obs({ point: 'classify', direction: 'out', buf: dgram, offset: INNER, length: inner, verdict: 'ok', peer, ...(route !== undefined ? { route } : {}), at: seen, express: true });
      obs({ point: 'encap', direction: 'out', buf: dgram, offset: 0, length, verdict: 'ok', peer, at: seen, express: true });
      const local = ctx.sentFrom(dgram, 0, length);
      // `seen`, not `done`: stamped before the send, as the pipeline does (the receiver may read it before the send returns).
      obs({ point: 'udp-send', direction: 'out', buf: dgram, offset: 0, length, verdict: ok ? 'sent' : DropReason.SendFailed, peer, local, remote: peer.endpoint, at: seen, express: true });
    }
  }
  return unrecorded;
}

/**
 * One engine's tap: drains the native log into the observer while one is attached (a timer, and
 * `drain` before each pipeline batch), and nothing at all otherwise. `run` wraps each timer drain
 * (a worker posts what it observed after it, as after a batch).
 */
export class ExpressTap {
  private timer: NodeJS.Timeout | undefined;
  private observer: Observer | undefined;
  /** Records lost with no record to report them on yet (see replayExpressRecords). */
  private carried = 0;

  constructor(
    private readonly take: () => ExpressRecords,
    private readonly ctx: ExpressTapContext,
    private readonly run: (drain: () => void) => void = (drain) => drain(),
  ) {}

  /** Attach (start draining) or, with undefined, detach: what was recorded and not drained goes, with its memory. */
  watch(observer: Observer | undefined): void {
    this.observer = observer;
    if (observer !== undefined && this.timer === undefined) {
      this.timer = setInterval(() => this.run(() => this.drain()), EXPRESS_DRAIN_INTERVAL_MS);
      this.timer.unref();
    } else if (observer === undefined && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.take();
      this.carried = 0;
    }
  }

  /** Reports what the express path forwarded since the last drain. */
  drain(): void {
    const obs = this.observer;
    if (obs === undefined) return;
    const got = this.take();
    if (got.records.length === 0 && got.lost === 0) return;
    this.carried = replayExpressRecords({ records: got.records, lost: got.lost + this.carried }, this.ctx, obs);
  }
}
