/**
 * src/node/link-watch.ts against a scripted route probe: the route missing is put back (once per
 * loss, logged), a link that is down is said once and waited out, a deleted device stops the node
 * once and the watch with it; the reload's field diff (route-source.ts) names exactly what changed.
 */
import { describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { watchLink } from '../../src/node/link-watch.js';
import { changedFields } from '../../src/node/route-source.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}

describe('link watch', () => {
  it('restores a lost route, waits out a down link, stops the node once when the device is gone', () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg as string) });
      // What the kernel answers to each probe in turn.
      const answers = ['EEXIST', 'ok', 'EEXIST', 'ENETDOWN', 'ENETDOWN', 'ENETDOWN', 'ok', 'EEXIST', 'ENODEV', 'EEXIST'];
      const probes: string[] = [];
      const add = (dst: string, prefixLen: number, dev: string): void => {
        probes.push(`${dst}/${prefixLen} ${dev}`);
        const a = answers[probes.length - 1]!;
        if (a !== 'ok') throw errno(a);
      };
      const lost = vi.fn();
      const w = watchLink({ device: 'vxtun0', route: { dst: '10.244.0.0', prefixLen: 16 }, log, lost, add, intervalMs: 500 });
      vi.advanceTimersByTime(500 * answers.length);
      expect(probes.length).toBe(9); // none after ENODEV
      expect(probes[0]).toBe('10.244.0.0/16 vxtun0');
      expect(lost).toHaveBeenCalledTimes(1);
      expect((lost.mock.calls[0]![0] as Error).message).toBe('TUN device vxtun0 was deleted');
      expect(lines.filter((l) => l.startsWith('pod-network route was gone'))).toHaveLength(2);
      expect(lines.filter((l) => l.startsWith('TUN device is down'))).toHaveLength(1);
      expect(lines.filter((l) => l.startsWith('TUN device deleted under the node'))).toHaveLength(1);
      w.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('stop ends the probes', () => {
    vi.useFakeTimers();
    try {
      const add = vi.fn(() => {
        throw errno('EEXIST');
      });
      const w = watchLink({ device: 'vxtun0', route: { dst: '10.244.0.0', prefixLen: 16 }, log: pino({ level: 'silent' }), lost: () => {}, add });
      vi.advanceTimersByTime(1000);
      expect(add).toHaveBeenCalledTimes(2);
      w.stop();
      vi.advanceTimersByTime(5000);
      expect(add).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('reload field diff', () => {
  it('names each changed leaf by its dotted path, Buffers and CIDRs compared by value', () => {
    const running = { publicIp: '198.18.0.1', backend: { vni: 1, port: 8472, vtepMac: Buffer.from([1, 2, 3, 4, 5, 6]) }, subnet: { family: 4, addr: 1, prefixLen: 24 }, device: { name: 'vxtun0' } };
    expect(changedFields(running, structuredClone({ ...running, backend: { ...running.backend, vtepMac: Buffer.from([1, 2, 3, 4, 5, 6]) } }))).toEqual([]);
    expect(changedFields(running, { ...running, backend: { ...running.backend, vni: 2, port: 4789 } })).toEqual(['backend.port', 'backend.vni']);
    expect(changedFields(running, { ...running, backend: { ...running.backend, vtepMac: Buffer.from([1, 2, 3, 4, 5, 7]) } })).toEqual(['backend.vtepMac']);
    expect(changedFields(running, { ...running, subnet: { family: 4, addr: 1, prefixLen: 25 }, device: { name: 'vxtun1', mtu: 1400 } })).toEqual(['device.mtu', 'device.name', 'subnet.prefixLen']);
  });
});
