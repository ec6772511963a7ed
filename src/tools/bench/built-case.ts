/** A bench case's topology once built: where traffic goes and which processes carry it. */
import type { Netns } from '../lab/netns.js';

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
