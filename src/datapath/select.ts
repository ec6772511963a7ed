/**
 * Picks the packet path at start-up: the native fast path (addon-owned UDP socket with
 * recvmmsg/sendmmsg, UDP GSO and GRO, the addon's checksum) or the pure-TypeScript reference path
 * (Node's dgram, TS checksums). Both produce byte-identical frames (test/unit/datapath.test.ts).
 */
import { loadNative } from '../io/addon.js';
import type { OnesSumFn } from '../packet/wire/checksum.js';
import type { EncapBatchFn } from '../packet/encap.js';
import type { Bind } from '../io/bind.js';
import { DgramBind } from '../io/bind-dgram.js';
import { NativeBind, UdpCounter } from '../io/bind-native.js';
import type { DatapathConfig, DatapathKind } from './config.js';

export interface Datapath {
  kind: 'native' | 'ts';
  bind: Bind;
  /** The checksum the engine should use for per-packet work; undefined = the TS reference. */
  onesSum: OnesSumFn | undefined;
  /** The addon's batch encap for the engine; undefined = per-packet TS emit. */
  encapBatch?: EncapBatchFn;
  /** What is on, for the start-up log line and `vxtun status`. */
  features: Record<string, boolean | number | string>;
  /** The bind's own counters by name (native: read from shared memory, no call). */
  counters(): Record<string, number>;
  /** Native only: the shared counter array itself (layout UdpCounter), for summing over workers. */
  rawCounters?: Float64Array;
}

/** Names a shared-memory counter array by an index table. */
export function namedCounters(table: Record<string, number>, values: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, i] of Object.entries(table)) out[name] = values[i] ?? 0;
  return out;
}

export interface DatapathRequest {
  kind: DatapathKind;
  gso: boolean;
  /** Native path: UDP GRO on receive when the kernel has it (default true). */
  gro?: boolean;
  /** SO_REUSEPORT (native path), so worker threads can bind the same port. */
  reusePort?: boolean;
  /** Native path only: 'fixed' sends from `port`; a range sends from a flow-hashed pool (RFC 7348 §5). */
  sourcePorts?: DatapathConfig['sourcePorts'];
  /** Native path only: CoDel on the receive queue (see DatapathConfig.codel). */
  codel?: DatapathConfig['codel'];
  address: string;
  port: number;
}

/** 'auto' becomes native when the addon loaded, else ts; 'native' without the addon is an Error naming why. */
export function resolveDatapathKind(kind: DatapathKind): 'native' | 'ts' {
  if (kind === 'ts') return 'ts';
  const native = loadNative();
  if (native === undefined) {
    if (kind === 'native') throw new Error('datapath native: the native addon is not available (built? VXTUN_NO_NATIVE=1?)');
    return 'ts';
  }
  return 'native';
}

/**
 * Opens the bind for the requested path. 'auto' is native when the addon loaded (VXTUN_NO_NATIVE=1
 * or a missing build means ts); 'native' without the addon is an Error naming why.
 */
export async function openDatapath(req: DatapathRequest): Promise<Datapath> {
  if (resolveDatapathKind(req.kind) === 'native') {
    const native = loadNative()!;
    const sp = req.sourcePorts ?? 'fixed';
    const bind = NativeBind.open(req.address, req.port, { gso: req.gso, gro: req.gro ?? true, reusePort: req.reusePort === true, ...(sp !== 'fixed' ? { sourcePorts: sp } : {}), ...(req.codel ? { codel: req.codel } : {}) });
    return {
      kind: 'native',
      bind,
      onesSum: native.checksum, // an absent initial is 0 in the addon too: no wrapper frame per packet
      encapBatch: native.encapBatch,
      features: {
        recvmmsg: true,
        sendmmsg: true,
        udpGso: bind.features.gso,
        udpGro: bind.features.gro,
        nativeChecksum: true,
        nativeEncap: true,
        sourcePorts: sp === 'fixed' ? 'fixed' : bind.sourcePorts.join(','),
        ...(sp === 'fixed' ? {} : { sourcePortRange: `${sp.min}-${sp.max}` }),
        recvBufferSize: bind.features.recvBufferSize,
        sendBufferSize: bind.features.sendBufferSize,
        codel: bind.features.codel && req.codel ? `${req.codel.targetUs}/${req.codel.intervalUs} µs` : false,
      },
      counters: () => namedCounters(UdpCounter, bind.counters),
      rawCounters: bind.counters,
    };
  }
  const bind = await DgramBind.open(req.address, req.port);
  return {
    kind: 'ts',
    bind,
    onesSum: undefined,
    features: { recvmmsg: false, sendmmsg: false, udpGso: false, udpGro: false, nativeChecksum: false, nativeEncap: false, sourcePorts: 'fixed', codel: false },
    counters: () => Object.fromEntries(bind.sendErrors),
  };
}

/**
 * How datagrams pick their source port, in words, for the start-up log and `vxtun status`:
 * "fixed 8472" or "flow-hashed over 32768-60999 (16 ports)".
 */
export function describeSourcePorts(features: Record<string, unknown>, port: number): string {
  const pool = features.sourcePorts;
  if (typeof pool !== 'string' || pool === 'fixed') return `fixed ${port}`;
  return `flow-hashed over ${String(features.sourcePortRange)} (${pool.split(',').length} ports)`;
}
