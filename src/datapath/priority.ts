/**
 * The data path's threads at the priority `datapath.nice` asks for (−10 is what Open vSwitch's
 * ovs-ctl starts ovs-vswitchd at; the default, 0, leaves the priority vxtun was started with). The kernel's VXLAN does this work in softirq, ahead of
 * every task; at nice 0 vxtun's threads share a busy CPU evenly with the pods' own processes, so a
 * packet waits out their slices and a bulk flow's senders take CPU the forwarding needs. Linux's nice
 * is per thread: every thread the process has is set, and threads made later inherit it.
 */
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

export type NiceResult = { applied: number } | { error: string };

export function applyNice(nice: number): NiceResult {
  if (nice === getPriority(0)) return { applied: nice };
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        setPriority(Number(tid), nice);
      } catch (err) {
        if ((err as { code?: string }).code !== 'ESRCH') throw err; // a thread that ended since the listing
      }
    }
    return { applied: nice };
  } catch (err) {
    // Raising priority needs CAP_SYS_NICE (or RLIMIT_NICE): without it the threads keep theirs.
    const e = err as { code?: string; message: string };
    return { error: e.code ?? e.message };
  }
}
