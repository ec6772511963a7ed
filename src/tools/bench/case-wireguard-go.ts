/**
 * The `wireguard-go` bench case: userspace WireGuard (the wireguard-go daemon, on a TUN device) on
 * both nodes, configured as the kernel case is; it encrypts. Its processes are the dataplane.
 */
import { existsSync } from 'node:fs';
import { waitFor } from '../lab/exec.js';
import { processOutput } from '../lab/netns.js';
import { WIREGUARD_OVERHEAD, WIREGUARD_PORT, wireguardCase } from './wireguard-peers.js';

export const WIREGUARD_GO_CASE = wireguardCase({
  id: 'wireguard-go',
  dataplane: 'wireguard-go',
  title: 'wireguard-go (userspace WireGuard, encrypted)',
  description: `wireguard-go on both nodes (userspace WireGuard on a TUN device, udp ${WIREGUARD_PORT}, configured with wg set), pods routed over it at the underlay MTU − ${WIREGUARD_OVERHEAD}: a userspace dataplane in Go that also encrypts every packet`,
  programs: { names: ['wireguard-go'], debianPackage: 'wireguard-go' },
  async createDevice(node, dev) {
    // -f: stay in the foreground, so the topology owns (and stops) the process.
    const child = node.ns.spawn(['wireguard-go', '-f', dev], { env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' } });
    await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`wireguard-go exited: ${processOutput(child).trim()}`);
        return existsSync(`/var/run/wireguard/${dev}.sock`);
      },
      { timeoutMs: 10_000, what: `wireguard-go's control socket for ${dev}` },
    );
    return [{ role: `wireguard-go node ${node.index}`, pid: child.pid! }];
  },
});
