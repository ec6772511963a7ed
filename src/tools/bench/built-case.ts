/** A bench case's topology once built: where traffic goes and which processes carry it. */
import type { Netns } from '../lab/netns.js';
import type { WireMode } from '../lab/underlay.js';

/** What every case of one bench pass is built on: the same wire and MTU for all of them. */
export interface CaseEnv {
  /** `veth`: the underlay as veth gives it (super-packets cross whole); `link`: segmentation offloads off, GRO on, every frame within the MTU. */
  wire: WireMode;
  /** Underlay MTU. */
  mtu: number;
}

export const DEFAULT_CASE_ENV: CaseEnv = { wire: 'veth', mtu: 1500 };

export interface BuiltCase {
  client: Netns;
  server: Netns;
  serverIp: string;
  /** Names of the namespaces this case made start with this (`<prefix>-*`). */
  namespacePrefix: string;
  /** vxtun processes carrying the traffic (CPU and RSS are theirs). */
  dataplane: { role: string; pid: number }[];
  /** What each vxtun node reported as its datapath. */
  datapaths: string[];
  destroy(): Promise<void>;
}
