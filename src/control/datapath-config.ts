/**
 * The `datapath` section of the node config: which packet path runs and which offloads it may use.
 * Every switch here forces a fallback a test (or an operator on a strange kernel) may need.
 *
 *   "datapath": { "kind": "auto" | "native" | "ts", "gso": true, "tunOffload": true }
 *
 * kind: auto = the native fast path when the addon loaded, else the TypeScript reference path;
 * native = the fast path or refuse to start; ts = the TypeScript reference path (Node's dgram,
 * TS checksums). gso: use UDP GSO on send when the kernel has it (default true). tunOffload: on the
 * native path, open the TUN with IFF_VNET_HDR + TSO/CSUM offloads when the kernel takes them (default true).
 */
import { z } from 'zod';

export const DATAPATH_KINDS = ['auto', 'native', 'ts'] as const;
export type DatapathKind = (typeof DATAPATH_KINDS)[number];

export const DatapathSchema = z
  .strictObject({
    kind: z.enum(DATAPATH_KINDS).optional(),
    gso: z.boolean().optional(),
    tunOffload: z.boolean().optional(),
  })
  .optional();

export interface DatapathConfig {
  kind: DatapathKind;
  gso: boolean;
  tunOffload: boolean;
}

export function datapathDefaults(raw: z.infer<typeof DatapathSchema>): DatapathConfig {
  return { kind: raw?.kind ?? 'auto', gso: raw?.gso ?? true, tunOffload: raw?.tunOffload ?? true };
}
