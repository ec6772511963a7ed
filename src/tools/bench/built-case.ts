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
  /** Checks, before anything is measured, that the case carries traffic pod to pod and puts on the underlay the encapsulation it claims (verify-wire.ts); rejects with the reason. */
  verify?(): Promise<void>;
  destroy(): Promise<void>;
}

/** One dataplane `vxtun bench` compares: how to build its topology on `env`. */
export interface BenchCase {
  id: string;
  title: string;
  description: string;
  /** What carries the traffic, for table headers. */
  dataplane: string;
  build(say: (line: string) => void, env: CaseEnv): Promise<BuiltCase>;
}

/** A case this build or kernel cannot run (e.g. a backend or device type it does not have): reported, never faked. */
export class UnsupportedCase extends Error {}
