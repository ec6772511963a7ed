/**
 * /metrics as Prometheus reads it: the node's counters by direction and reason, routes, lease
 * events, lease expiry and registry reachability (read at scrape time from the running node).
 */
import { describe, expect, it } from 'vitest';
import type { HealthView } from '../../src/node/health.js';
import { metricsRegistry } from '../../src/node/metrics.js';
import { Counters } from '../../src/packet/counters.js';
import type { InfoReply } from '../../src/node/control-api.js';

function view(lease: Record<string, unknown> | null): HealthView {
  const counters = new Counters().snapshot();
  counters.tx.packets = 7;
  counters.rx.bytes = 840;
  counters.dropped['unknown-peer'] = 3;
  const info = { lease, features: { workers: 2, express: true }, datapathCounters: { udp: { RecvOverflows: 11, CodelDrops: 5 }, tun: {}, express: {} } } as unknown as InfoReply;
  return { info: () => info, counters: () => counters, routeCount: () => 4, missing: () => [] };
}

const sample = (text: string, line: string): number | undefined => {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
};

describe('metrics', () => {
  it('exposes counters, routes, lease expiry and registry reachability', async () => {
    const lease = { acquired: 1, renewed: 2, reacquired: 0, resyncs: 5, registryErrors: 1, ignoredLeases: 1, ignoredByReason: { 'outside-network': 1 }, ignoredIpv6Halves: 0, leaseExpiresAtMs: 1_800_000_000_000, registryReachable: false };
    const text = await metricsRegistry(view(lease)).metrics();
    expect(sample(text, 'vxtun_packets_total{direction="tx"}')).toBe(7);
    expect(sample(text, 'vxtun_bytes_total{direction="rx"}')).toBe(840);
    expect(sample(text, 'vxtun_dropped_packets_total{reason="unknown-peer"}')).toBe(3);
    // the VXLAN socket's drops: the kernel's (buffer full, peer filter) and CoDel's
    expect(sample(text, 'vxtun_dropped_packets_total{reason="udp-socket-full-or-not-peer"}')).toBe(11);
    expect(sample(text, 'vxtun_dropped_packets_total{reason="queue-delay"}')).toBe(5);
    expect(sample(text, 'vxtun_routes')).toBe(4);
    expect(sample(text, 'vxtun_lease_events_total{event="renewed"}')).toBe(2);
    expect(sample(text, 'vxtun_ignored_leases{reason="outside-network"}')).toBe(1);
    expect(sample(text, 'vxtun_lease_expiry_timestamp_seconds')).toBe(1_800_000_000);
    expect(sample(text, 'vxtun_registry_up')).toBe(0);
    expect(sample(text, 'vxtun_workers')).toBe(2);
    expect(sample(text, 'vxtun_ready')).toBe(1);
    expect(text).toContain('process_cpu_seconds_total');
  });

  it('reads no expiry where nothing expires, and a registry that answers as up', async () => {
    const none = await metricsRegistry(view(null)).metrics();
    expect(sample(none, 'vxtun_registry_up')).toBe(1);
    expect(sample(none, 'vxtun_lease_expiry_timestamp_seconds')).toBe(0);
    const kube = { acquired: 1, renewed: 0, reacquired: 0, resyncs: 1, registryErrors: 0, ignoredLeases: 0, ignoredByReason: {}, ignoredIpv6Halves: 0, leaseExpiresAtMs: 0, registryReachable: true };
    const text = await metricsRegistry(view(kube)).metrics();
    expect(sample(text, 'vxtun_lease_expiry_timestamp_seconds')).toBe(0);
    expect(sample(text, 'vxtun_registry_up')).toBe(1);
  });
});
