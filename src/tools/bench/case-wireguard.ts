/**
 * The `wireguard` bench case: the kernel's WireGuard between the two nodes (udp 51820), pods routed
 * over it at the underlay MTU − 60. It encrypts (ChaCha20-Poly1305), which no other kernel case does.
 * A kernel without it (no CONFIG_WIREGUARD, no module to load) makes the case unsupported.
 */
import { addKernelLink } from './two-node-case.js';
import { WIREGUARD_OVERHEAD, WIREGUARD_PORT, wireguardCase } from './wireguard-peers.js';

export const WIREGUARD_CASE = wireguardCase({
  id: 'wireguard',
  dataplane: 'kernel WireGuard',
  title: 'kernel WireGuard (encrypted)',
  description: `Linux's wireguard device on both nodes (udp ${WIREGUARD_PORT}, keys from wg genkey, configured with wg set), pods routed over it at the underlay MTU − ${WIREGUARD_OVERHEAD}; it encrypts every packet, which no other case does`,
  async createDevice(node, dev) {
    await addKernelLink(node.ns, [dev, 'type', 'wireguard'], 'wireguard device (CONFIG_WIREGUARD)');
    return [];
  },
});
