/**
 * Where each counter sits in the Float64Array blocks the addon shares with JavaScript (TUN offload,
 * UDP socket, express path). native/counters.def is the one definition: the addon exports the names
 * in index order (counterNames) and every layout here is built from them. Only when there is no addon
 * (the pure-TypeScript datapath) do the lists below stand in; test/unit/counter-layouts.test.ts holds
 * them equal to the addon's.
 */
import { addonCounterNames } from './addon.js';

/** The names of each block in index order, as native/counters.def lists them. */
export const FALLBACK_COUNTER_NAMES = {
  tun: ['Reads', 'GsoPackets', 'GsoSegments', 'ChecksumCompleted', 'BadVnetHdr', 'Writes', 'CoalescedWrites', 'CoalescedPackets', 'SuperWrites', 'UdpCoalescedWrites', 'UdpCoalescedPackets', 'UdpGsoPackets'],
  udp: ['RecvCalls', 'RecvPackets', 'RecvBytes', 'RecvTruncated', 'SendCalls', 'SendPackets', 'SendBytes', 'SendAgain', 'SendErrors', 'GsoSends', 'GsoSegments', 'GsoDisabled', 'LastErrno', 'GroReceives', 'GroSegments', 'RecvOverflows', 'CodelDrops'],
  express: ['TxPackets', 'TxBytes', 'RxPackets', 'RxBytes', 'SendFailed', 'TunWriteFailed', 'OutHandedOver', 'InHandedOver', 'ThreadPasses', 'LoopHandovers', 'ThreadResumes', 'InBatches', 'InBatchPackets', 'InBusyBatches', 'OutBatches', 'OutBatchPackets'],
} as const;

export type CounterBlock = keyof typeof FALLBACK_COUNTER_NAMES;
/** Index of each named counter in a block. */
export type CounterLayout<B extends CounterBlock> = Readonly<Record<(typeof FALLBACK_COUNTER_NAMES)[B][number], number>>;

/** The layout of `block` from `names` (in index order); every name the TypeScript side uses must be there. */
export function counterLayout<B extends CounterBlock>(block: B, names: readonly string[]): CounterLayout<B> {
  const layout: Record<string, number> = {};
  names.forEach((name, i) => (layout[name] = i));
  for (const name of FALLBACK_COUNTER_NAMES[block]) {
    if (layout[name] === undefined) throw new Error(`addon counterNames.${block} lacks ${name}: rebuild the addon (npm install)`);
  }
  return Object.freeze(layout) as CounterLayout<B>;
}

const names: Record<CounterBlock, readonly string[]> = addonCounterNames() ?? FALLBACK_COUNTER_NAMES;

/** TUN offload counters (LinuxTunDevice.offloadCounters; the TypeScript and the native offloads share them). */
export const TunCounter = counterLayout('tun', names.tun);
export const TUN_COUNTER_COUNT = names.tun.length;
/** UDP socket counters (NativeBind.counters). */
export const UdpCounter = counterLayout('udp', names.udp);
export const UDP_COUNTER_COUNT = names.udp.length;
/** Express path counters (the addon's express path, src/datapath/express.ts). */
export const ExpressCounter = counterLayout('express', names.express);
export const EXPRESS_COUNTER_COUNT = names.express.length;
