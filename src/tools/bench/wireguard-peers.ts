/**
 * What the two WireGuard cases (kernel `wireguard`, userspace `wireguard-go`) share: keys from
 * `wg genkey`, and each node's device configured by `wg set` with the other node as its one peer,
 * the peer's lease as its allowed IPs and routed through the device.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOk } from '../lab/exec.js';
import type { BenchCase, BuiltCase } from './built-case.js';
import { buildTwoNodeCase, requirePrograms, routeThroughDevice, type CaseNode } from './two-node-case.js';
import { WIRE } from './verify-wire.js';

export const WIREGUARD_PORT = 51820;
/** IPv4 (20) + UDP (8) + WireGuard's data header (16) + its authentication tag (16). */
export const WIREGUARD_OVERHEAD = 60;

interface KeyPair {
  privateKey: string;
  publicKey: string;
}

async function keyPair(): Promise<KeyPair> {
  const privateKey = (await runOk(['wg', 'genkey'])).stdout.trim();
  const publicKey = (await runOk(['wg', 'pubkey'], { input: `${privateKey}\n` })).stdout.trim();
  return { privateKey, publicKey };
}

/**
 * The device name for node `index`: unique to the topology, because `wg` looks for a userspace
 * device's control socket by name in /var/run/wireguard, shared by every namespace.
 */
export const wireguardDevice = (node: CaseNode): string => `wg${node.topology.id}n${node.index}`.slice(0, 15);

/** The shared WireGuard case: `createDevice` makes the device `dev` in the node and returns its dataplane processes. */
export function wireguardCase(
  c: Pick<BenchCase, 'id' | 'title' | 'dataplane' | 'description'> & {
    /** Programs the case needs besides wg, and their Debian package. */
    programs?: { names: string[]; debianPackage: string };
    createDevice(node: CaseNode, dev: string): Promise<BuiltCase['dataplane']>;
  },
): BenchCase {
  return {
    id: c.id,
    title: c.title,
    dataplane: c.dataplane,
    description: c.description,
    async build(say, env) {
      requirePrograms(['wg'], 'wireguard-tools');
      if (c.programs) requirePrograms(c.programs.names, c.programs.debianPackage);
      const keys = [await keyPair(), await keyPair()];
      return buildTwoNodeCase(say, env, {
        overhead: WIREGUARD_OVERHEAD,
        stack: WIRE.wireguard(WIREGUARD_PORT),
        async setupNode(node) {
          const dev = wireguardDevice(node);
          const dataplane = await c.createDevice(node, dev);
          // wg's control socket of a userspace device lives outside the namespace: removed with the topology.
          node.topology.atDestroy(() => rmSync(`/var/run/wireguard/${dev}.sock`, { force: true }));
          const peer = keys[2 - node.index]!;
          // wg reads the private key from a file (a child's stdin here is a socket, which it cannot open).
          const keyDir = mkdtempSync(join(tmpdir(), 'vxtun-wg-'));
          try {
            const keyFile = join(keyDir, 'private.key');
            writeFileSync(keyFile, `${keys[node.index - 1]!.privateKey}\n`, { mode: 0o600 });
            await node.ns.execOk(['wg', 'set', dev, 'private-key', keyFile, 'listen-port', String(WIREGUARD_PORT), 'peer', peer.publicKey, 'endpoint', `${node.peer.publicIp}:${WIREGUARD_PORT}`, 'allowed-ips', node.peer.subnet]);
          } finally {
            rmSync(keyDir, { recursive: true, force: true });
          }
          await routeThroughDevice(node, dev);
          return dataplane;
        },
      });
    },
  };
}
