/**
 * flanneld's command line on `vxtun up`: Go spellings, FLANNELD_* variables (command line wins),
 * Go booleans, ranges, the one-line warning for flags without meaning, and how the flags lay over
 * a config file (flags win; flanneld's defaults where neither says anything).
 */
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { addFlanneldFlags, flanneldOptions, goArgs, logLevelFromVerbosity, envName } from '../../src/cli/flanneld-flags.js';
import { overlayFlanneld, hasFlanneldFlags } from '../../src/node/flanneld.js';
import { validateFlannelNodeConfig } from '../../src/control/flannel-node-config.js';

function parse(args: string[], env: Record<string, string> = {}): ReturnType<typeof flanneldOptions> & { cmd: Command } {
  const cmd = addFlanneldFlags(new Command('up').exitOverride().option('--log-level <l>', 'level', 'info'));
  cmd.parse(goArgs(args), { from: 'user' });
  return { ...flanneldOptions(cmd, env), cmd };
}

const iface = (): { iface: string; address: string } => ({ iface: 'eth9', address: '198.18.0.9' });

describe("flanneld's flags", () => {
  it('reads Go spellings: one dash, =value, repeated --iface, --flag=false', () => {
    const { options } = parse(['-etcd-endpoints=http://198.18.0.250:2379', '--iface', 'eth1', '--iface=198.18.0.1', '--kube-subnet-mgr=false', '-subnet-lease-renew-margin', '30']);
    expect(options).toEqual({ etcdEndpoints: 'http://198.18.0.250:2379', iface: ['eth1', '198.18.0.1'], kubeSubnetMgr: false, subnetLeaseRenewMargin: 30 });
  });

  it('fills the flags not given from FLANNELD_* (the command line wins; empty counts as unset)', () => {
    expect(envName('etcd-endpoints')).toBe('FLANNELD_ETCD_ENDPOINTS');
    const { options } = parse(['--etcd-prefix=/cli'], { FLANNELD_ETCD_PREFIX: '/env', FLANNELD_ETCD_ENDPOINTS: 'http://198.18.0.250:2379', FLANNELD_KUBE_SUBNET_MGR: 'true', FLANNELD_PUBLIC_IP: '' });
    expect(options).toEqual({ etcdPrefix: '/cli', etcdEndpoints: 'http://198.18.0.250:2379', kubeSubnetMgr: true });
  });

  it('refuses a margin out of 1..1439 and a bad boolean, naming the flag and value', () => {
    expect(() => parse(['--subnet-lease-renew-margin=1440'])).toThrow('--subnet-lease-renew-margin: "1440" is not an integer in 1..1439');
    expect(() => parse(['--kube-subnet-mgr=yes'])).toThrow('--kube-subnet-mgr: "yes" is not a boolean');
  });

  it('accepts a flag without meaning for vxtun with one warning naming it', () => {
    const { options, warnings } = parse(['--iptables-forward-rules=false', '--persistent-mac']);
    expect(options).toEqual({});
    expect(warnings).toEqual(['--iptables-forward-rules: accepted for flanneld compatibility, has no effect in vxtun', '--persistent-mac: accepted for flanneld compatibility, has no effect in vxtun']);
  });

  it('-v maps to a log level unless --log-level is given', () => {
    expect(logLevelFromVerbosity(parse(['-v=2']).cmd, {})).toBe('debug');
    expect(logLevelFromVerbosity(parse(['-v', '0']).cmd, {})).toBe('info');
    expect(logLevelFromVerbosity(parse(['-v=2', '--log-level', 'warn']).cmd, {})).toBeUndefined();
  });
});

describe('flanneld flags over a config file', () => {
  it("without a file: etcd at flanneld's defaults, subnet.env default, the picked interface's address", () => {
    const raw = overlayFlanneld(undefined, { ipMasq: undefined } as never, iface);
    expect(raw).toEqual({ registry: { type: 'etcd', endpoints: ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'], prefix: '/coreos.com/network' }, subnetEnv: '/run/flannel/subnet.env', publicIp: '198.18.0.9' });
    const cfg = validateFlannelNodeConfig(raw);
    expect(cfg.registry).toMatchObject({ type: 'etcd', api: 'v3' });
  });

  it('flags win over the file; TLS, basic auth and the renew margin (minutes) reach the registry', () => {
    const file = { publicIp: '198.18.0.1', registry: { type: 'etcd', endpoints: ['http://198.18.0.250:2379'], api: 'v2', tls: { ca: '/file/ca.pem' } }, subnetEnv: '/file/subnet.env' };
    const raw = overlayFlanneld(file, { etcdEndpoints: 'https://198.18.0.251:2379', etcdCertfile: '/c.pem', etcdKeyfile: '/k.pem', etcdUsername: 'root', etcdPassword: 'pw', subnetLeaseRenewMargin: 30, subnetFile: '/run/x.env' }, iface);
    const cfg = validateFlannelNodeConfig(raw);
    expect(cfg.registry).toEqual({ type: 'etcd', endpoints: ['https://198.18.0.251:2379'], prefix: '/coreos.com/network', api: 'v2', tls: { ca: '/file/ca.pem', cert: '/c.pem', key: '/k.pem' }, renewMarginSeconds: 1800, auth: { username: 'root', password: 'pw' } });
    expect(cfg.subnetEnv).toBe('/run/x.env');
    expect(cfg.publicIp).toBe('198.18.0.1');
  });

  it('--kube-subnet-mgr makes a kube registry; etcd flags with it are refused', () => {
    const cfg = validateFlannelNodeConfig(overlayFlanneld(undefined, { kubeSubnetMgr: true, kubeApiUrl: 'http://127.0.0.1:6443', netConfigPath: '/etc/nc.json', setNodeNetworkUnavailable: false }, iface));
    expect(cfg.registry).toEqual({ type: 'kube', apiUrl: 'http://127.0.0.1:6443', netConfPath: '/etc/nc.json', setNodeNetworkUnavailable: false });
    expect(() => overlayFlanneld(undefined, { kubeSubnetMgr: true, etcdPrefix: '/x' }, iface)).toThrow('--etcd-prefix: an etcd setting, but the subnets come from Kubernetes (--kube-subnet-mgr)');
    expect(() => overlayFlanneld(undefined, { kubeApiUrl: 'http://127.0.0.1:6443' }, iface)).toThrow('--kube-api-url: a Kubernetes setting, without --kube-subnet-mgr');
  });

  it('--public-ip must be an address of the chosen --iface', () => {
    expect(() => overlayFlanneld(undefined, { iface: ['eth9'], publicIp: '198.18.0.7' }, iface)).toThrow('--public-ip: "198.18.0.7" is not an address of the chosen interface');
    expect(hasFlanneldFlags({ healthzPort: 8471 })).toBe(false);
    expect(hasFlanneldFlags({ iface: ['eth0'] })).toBe(true);
  });
});
