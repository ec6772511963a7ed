/**
 * flanneld's --ip-masq rules (pkg/ip/iptables.go, MasqRules, flannel ≥ 0.17): a FLANNEL-POSTRTG chain
 * in the nat table, jumped to from POSTROUTING, that leaves pod-to-pod traffic alone and masquerades
 * pod traffic leaving the network. vxtun removes the chain and the jump on exit (flanneld does not),
 * and on a start without --ip-masq (a run killed with -9 cannot remove them).
 */
import { execFileSync } from 'node:child_process';
import { type Cidr4 } from './flannel.js';
import { cidrToString } from '../packet/cidr.js';

export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
const COMMENT = ['-m', 'comment', '--comment', 'flanneld masq'];
const JUMP = ['POSTROUTING', ...COMMENT, '-j', MASQ_CHAIN];

export function masqRules(network: Cidr4, subnet: Cidr4): string[][] {
  const n = cidrToString(network);
  const s = cidrToString(subnet);
  return [
    // kube-proxy's mark: already masqueraded by it
    ['-m', 'mark', '--mark', '0x4000/0x4000', ...COMMENT, '-j', 'RETURN'],
    ['-s', s, '-d', n, ...COMMENT, '-j', 'RETURN'],
    ['-s', n, '-d', s, ...COMMENT, '-j', 'RETURN'],
    ['!', '-s', n, '-d', s, ...COMMENT, '-j', 'RETURN'],
    ['-s', n, '!', '-d', '224.0.0.0/4', ...COMMENT, '-j', 'MASQUERADE', '--random-fully'],
    ['!', '-s', n, '-d', n, ...COMMENT, '-j', 'MASQUERADE', '--random-fully'],
  ];
}

function iptables(args: string[]): void {
  execFileSync('iptables', ['-w', '5', '-t', 'nat', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Runs iptables; false when it refused (the rule or chain is not there, or there is no iptables). */
function quiet(args: string[]): boolean {
  try {
    iptables(args);
    return true;
  } catch {
    return false;
  }
}

/** Installs the rules (replacing a chain left by a crash); throws with iptables' message on failure. */
export function installMasq(network: Cidr4, subnet: Cidr4): void {
  removeMasq();
  try {
    iptables(['-N', MASQ_CHAIN]);
    for (const rule of masqRules(network, subnet)) iptables(['-A', MASQ_CHAIN, ...rule]);
    iptables(['-A', ...JUMP]);
  } catch (err) {
    removeMasq();
    const stderr = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n')[0];
    throw new Error(`--ip-masq: iptables failed: ${stderr}`);
  }
}

/** Removes the jump and the chain; true when there was something to remove. */
export function removeMasq(): boolean {
  const jump = quiet(['-D', ...JUMP]);
  const flushed = quiet(['-F', MASQ_CHAIN]);
  quiet(['-X', MASQ_CHAIN]);
  return jump || flushed;
}

/** flanneld's resync (--iptables-resync): installs the rules again when any is missing; true if it did. */
export function ensureMasq(network: Cidr4, subnet: Cidr4): boolean {
  const present = [...masqRules(network, subnet).map((rule) => ['-C', MASQ_CHAIN, ...rule]), ['-C', ...JUMP]].every((check) => quiet(check));
  if (present) return false;
  installMasq(network, subnet);
  return true;
}
