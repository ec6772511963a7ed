/**
 * A non-peer host flooding a VXLAN port (bench/udp-flood/udp_flood.c: sendmmsg from one core), for
 * the flood benchmark (scripts/flood-bench.mjs) and the socket-overflow test.
 */
import type { ChildProcess } from 'node:child_process';
import type { Netns } from './netns.js';
import { buildCProgram } from './c-program.js';

export interface FloodOptions {
  dst: string;
  port?: number;
  seconds: number;
  /** Datagram payload bytes (default 1400). */
  size?: number;
  /** Stop after this many datagrams (default: no limit). */
  count?: number;
}

export interface FloodResult {
  sent: number;
  seconds: number;
  perSecond: number;
  /** sendmmsg calls the local stack refused (ENOBUFS...). */
  refused: number;
}

export function buildUdpFlood(): Promise<string> {
  return buildCProgram('bench/udp-flood/udp_flood.c', 'udp-flood', 'the UDP flooder');
}

function argv(binary: string, o: FloodOptions): string[] {
  return [binary, o.dst, String(o.port ?? 8472), String(o.seconds), String(o.size ?? 1400), String(o.count ?? 0)];
}

/** Floods from `ns` and resolves to what was sent. */
export async function flood(ns: Netns, o: FloodOptions): Promise<FloodResult> {
  const binary = await buildUdpFlood();
  const r = await ns.execOk(argv(binary, o), { timeoutMs: (o.seconds + 30) * 1000 });
  return JSON.parse(r.stdout) as FloodResult;
}

/** Starts a flood in the background (a bench runs a measurement meanwhile). */
export async function startFlood(ns: Netns, o: FloodOptions): Promise<ChildProcess> {
  return ns.spawn(argv(await buildUdpFlood(), o));
}
