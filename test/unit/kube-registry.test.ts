/**
 * The kube subnet manager (KubeRegistry under the lease manager) against the stand-in API server on
 * loopback: it publishes flannel's annotations and condition by patches on nodes/<name>/status,
 * learns the other nodes (added, modified, deleted) and ignores those without kube-subnet-manager,
 * survives a 410 Gone (as an ERROR event and as HTTP 410) by listing again, resumes a watch the
 * server ended from the last version or bookmark, and keeps its VtepMAC across a restart.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { KubeRegistry, type KubeSettings } from '../../src/control/registry/kube.js';
import { LeaseManager } from '../../src/control/lease-manager.js';
import { RegistryError } from '../../src/control/registry/registry.js';
import { encodeLeaseValue, parseNetworkConfig, type LeaseV6 } from '../../src/control/flannel.js';
import { cidrToString } from '../../src/packet/cidr.js';
import { macFromString, macToString } from '../../src/packet/wire/ethernet.js';
import type { Route, Vtep } from '../../src/packet/routes.js';
import { FakeKubeApiServer, type KubeNode } from '../support/kube-apiserver.js';

const log = pino({ level: 'silent' });
const PREFIX = 'flannel.alpha.coreos.com/';
const NET_CONF = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';

function flannelNode(name: string, podCIDR: string, publicIp: string, mac: string): KubeNode {
  return {
    metadata: {
      name,
      annotations: {
        [`${PREFIX}backend-data`]: `{"VNI":1,"VtepMAC":"${mac}"}`,
        [`${PREFIX}backend-type`]: 'vxlan',
        [`${PREFIX}kube-subnet-manager`]: 'true',
        [`${PREFIX}public-ip`]: publicIp,
      },
    },
    spec: { podCIDR, podCIDRs: [podCIDR] },
    status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
  };
}

/** The table as "subnet@publicIp/mac" strings, sorted. */
const table = (routes: Route<Vtep>[]): string[] => routes.map((r) => `${cidrToString(r.prefix)}@${r.target.endpoint.address}/${macToString(r.target.vtepMac)}`).sort();

function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = (): void => {
      const v = probe();
      if (v !== undefined && v !== false) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

describe('kube subnet manager against the stand-in API server', () => {
  let api: FakeKubeApiServer;
  let dir: string;
  let settings: KubeSettings;
  const cleanups: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    api = await new FakeKubeApiServer().start();
    dir = mkdtempSync(join(tmpdir(), 'vxtun-kube-'));
    writeFileSync(join(dir, 'net-conf.json'), NET_CONF);
    settings = { apiUrl: api.url, netConfPath: join(dir, 'net-conf.json'), env: { NODE_NAME: 'vx-1' } };
    api.addNode({
      metadata: { name: 'vx-1', annotations: { 'node.alpha.kubernetes.io/ttl': '0' } },
      spec: { podCIDR: '10.244.5.0/24', podCIDRs: ['10.244.5.0/24'] },
      status: {
        conditions: [
          { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' },
          { type: 'Ready', status: 'False', reason: 'KubeletNotReady' },
        ],
      },
    });
    api.addNode(flannelNode('worker-1', '10.244.1.0/24', '198.18.0.11', '6e:cd:b5:5e:5a:01'));
    // A node flannel does not manage (every lease annotation but kube-subnet-manager): never a peer.
    const plain = flannelNode('plain-1', '10.244.2.0/24', '198.18.0.12', '6e:cd:b5:5e:5a:02');
    delete plain.metadata.annotations![`${PREFIX}kube-subnet-manager`];
    api.addNode(plain);
  });

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startNode(vtepMac: string, v6?: LeaseV6): Promise<{ registry: KubeRegistry; manager: LeaseManager; events: Route<Vtep>[][] }> {
    const registry = await KubeRegistry.open(settings, log);
    const network = parseNetworkConfig(await registry.getNetworkConfig(), 'net-conf.json');
    const leaseValue = encodeLeaseValue('198.18.0.1', { type: 'vxlan', vni: 1, vtepMac: macFromString(vtepMac) }, v6);
    // A TTL that would have the etcd path renew twice a second: nothing in Kubernetes is renewed.
    const manager = new LeaseManager({ registry, network, publicIp: '198.18.0.1', leaseValue, log, maxBackoffMs: 200, ttlSeconds: 1 });
    const events: Route<Vtep>[][] = [];
    manager.on('routes', (r) => events.push(r));
    cleanups.push(async () => {
      await manager.stop();
      await registry.close();
    });
    await manager.acquire();
    return { registry, manager, events };
  }

  it('publishes our lease and condition, and follows the managed nodes through adds, changes, deletes and 410s', async () => {
    const { registry, manager, events } = await startNode('0e:aa:bb:cc:dd:01');
    expect(cidrToString(manager.subnet)).toBe('10.244.5.0/24');
    expect(api.patches).toEqual([
      {
        name: 'vx-1',
        contentType: 'application/strategic-merge-patch+json',
        body:
          '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"{\\"VNI\\":1,\\"VtepMAC\\":\\"0e:aa:bb:cc:dd:01\\"}",' +
          '"flannel.alpha.coreos.com/backend-type":"vxlan","flannel.alpha.coreos.com/kube-subnet-manager":"true","flannel.alpha.coreos.com/public-ip":"198.18.0.1"}}}',
      },
    ]);
    expect(api.node('vx-1')!.metadata.annotations).toEqual({
      'node.alpha.kubernetes.io/ttl': '0',
      [`${PREFIX}backend-data`]: '{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:01"}',
      [`${PREFIX}backend-type`]: 'vxlan',
      [`${PREFIX}kube-subnet-manager`]: 'true',
      [`${PREFIX}public-ip`]: '198.18.0.1',
    });

    await registry.completeLease();
    expect(api.patches[1]!.contentType).toBe('application/strategic-merge-patch+json');
    const conditions = api.node('vx-1')!.status!.conditions!;
    // Merged by type: NetworkUnavailable replaced, Ready untouched.
    expect(conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['NetworkUnavailable', 'False', 'FlannelIsUp'],
      ['Ready', 'False', 'KubeletNotReady'],
    ]);
    expect(conditions[0]!.message).toBe('Flannel is running on this node');

    manager.start();
    await until('the first table', () => events.length >= 1);
    expect(table(events.at(-1)!)).toEqual(['10.244.1.0/24@198.18.0.11/6e:cd:b5:5e:5a:01']);

    // Added, then modified (new VtepMAC), then a change flannel does not look at (no new table), then deleted.
    api.addNode(flannelNode('worker-2', '10.244.3.0/24', '198.18.0.13', '6e:cd:b5:5e:5a:03'));
    await until('worker-2 added', () => table(manager.routes).includes('10.244.3.0/24@198.18.0.13/6e:cd:b5:5e:5a:03'));
    api.updateNode('worker-2', (n) => (n.metadata.annotations![`${PREFIX}backend-data`] = '{"VNI":1,"VtepMAC":"6e:cd:b5:5e:5a:33"}'));
    await until('worker-2 modified', () => table(manager.routes).includes('10.244.3.0/24@198.18.0.13/6e:cd:b5:5e:5a:33'));
    const tables = events.length;
    api.updateNode('worker-1', (n) => (n.status = { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: '2026-12-07T05:00:00Z' }] }));
    api.updateNode('plain-1', (n) => (n.metadata.labels = { role: 'edge' }));
    api.deleteNode('worker-2');
    await until('worker-2 deleted', () => !table(manager.routes).some((r) => r.startsWith('10.244.3.0/24')));
    expect(events.length).toBe(tables + 1); // the delete alone: heartbeats and unmanaged nodes change nothing

    // An unmanaged node becomes managed: a peer from then on.
    api.updateNode('plain-1', (n) => (n.metadata.annotations![`${PREFIX}kube-subnet-manager`] = 'true'));
    await until('plain-1 managed', () => table(manager.routes).includes('10.244.2.0/24@198.18.0.12/6e:cd:b5:5e:5a:02'));

    // 410 as an ERROR event mid-watch: what changed meanwhile is only in a fresh list.
    const lists = (): number => api.requests.filter((r) => r === 'GET /api/v1/nodes').length;
    const listsBefore = lists();
    api.compact();
    api.expireWatches();
    api.deleteNode('worker-1');
    api.addNode(flannelNode('worker-4', '10.244.4.0/24', '198.18.0.14', '6e:cd:b5:5e:5a:04'));
    api.compact();
    await until('relisted after the 410 event', () => table(manager.routes).includes('10.244.4.0/24@198.18.0.14/6e:cd:b5:5e:5a:04'));
    expect(lists()).toBe(listsBefore + 1);
    expect(table(manager.routes)).toEqual(['10.244.2.0/24@198.18.0.12/6e:cd:b5:5e:5a:02', '10.244.4.0/24@198.18.0.14/6e:cd:b5:5e:5a:04']);
    await until('watching again', () => api.openWatches === 1);

    // The server ends the watch normally: resumed from the last bookmark, no list.
    api.bookmark();
    const bookmarked = api.resourceVersion;
    await new Promise((r) => setTimeout(r, 100));
    api.closeWatches();
    await until('resumed from the bookmark', () => api.requests.some((r) => r.includes(`resourceVersion=${bookmarked}&`) || r.endsWith(`resourceVersion=${bookmarked}`)));
    expect(lists()).toBe(listsBefore + 1);

    // 410 as an HTTP status on the resumed watch: listed again.
    api.goneAs = 'http';
    await until('watching again', () => api.openWatches === 1);
    api.closeWatches();
    api.updateNode('worker-4', (n) => (n.metadata.annotations![`${PREFIX}public-ip`] = '198.18.0.24'));
    api.compact();
    await until('relisted after HTTP 410', () => table(manager.routes).includes('10.244.4.0/24@198.18.0.24/6e:cd:b5:5e:5a:04'));
    expect(lists()).toBe(listsBefore + 2);
    expect(manager.stats.resyncs).toBe(3);
    // Our own node never became a peer, and no lease was ever renewed.
    expect(table(manager.routes).some((r) => r.startsWith('10.244.5.0/24'))).toBe(false);
    expect(manager.stats.renewed).toBe(0);
    expect(manager.stats.registryErrors).toBe(2); // the two 410s, nothing else
  });

  it('keeps its VtepMAC across a restart and patches nothing when the annotations already say it all', async () => {
    const first = await startNode('0e:aa:bb:cc:dd:01');
    await first.manager.stop();
    await first.registry.close();
    const registry = await KubeRegistry.open(settings, log);
    cleanups.push(() => registry.close());
    expect(await registry.storedAttrs()).toEqual({ vtepMac: '0e:aa:bb:cc:dd:01' });
    const patches = api.patches.length;
    const second = await startNode((await registry.storedAttrs()).vtepMac!);
    expect(cidrToString(second.manager.subnet)).toBe('10.244.5.0/24');
    expect(api.patches.length).toBe(patches);
  });

  it('publishes public-ip-overwrite and reads node-public-ip back as our address', async () => {
    api.updateNode('vx-1', (n) => Object.assign(n.metadata.annotations!, { [`${PREFIX}public-ip-overwrite`]: '198.18.1.1', [`${PREFIX}node-public-ip`]: '198.18.0.1' }));
    const { registry } = await startNode('0e:aa:bb:cc:dd:01');
    expect(api.node('vx-1')!.metadata.annotations![`${PREFIX}public-ip`]).toBe('198.18.1.1');
    expect((await registry.storedAttrs()).publicIp).toBe('198.18.0.1');
  });

  it("finds its node through the pod's spec.nodeName, and says what is missing otherwise", async () => {
    api.addPod('kube-flannel', 'kube-flannel-ds-x7k2p', 'vx-1');
    const registry = await KubeRegistry.open({ ...settings, env: { POD_NAME: 'kube-flannel-ds-x7k2p', POD_NAMESPACE: 'kube-flannel' } }, log);
    expect(registry.nodeName).toBe('vx-1');
    expect(api.requests).toContain('GET /api/v1/namespaces/kube-flannel/pods/kube-flannel-ds-x7k2p');
    await expect(KubeRegistry.open({ ...settings, env: {} }, log)).rejects.toThrow('env variables POD_NAME and POD_NAMESPACE must be set');
    await expect(KubeRegistry.open({ ...settings, env: { POD_NAME: 'gone', POD_NAMESPACE: 'kube-flannel' } }, log)).rejects.toThrow(/retrieving pod spec for 'kube-flannel\/gone' failed: HTTP 404: pods "gone" not found/);
  });

  it('reaches the API through a kubeconfig file (its token sent), with --kube-api-url replacing its server, and says when nothing names one', async () => {
    const kubeconfig = (server: string): string => {
      const file = join(dir, 'kubeconfig');
      writeFileSync(
        file,
        ['apiVersion: v1', 'kind: Config', 'current-context: flannel', 'clusters:', '- name: kube', '  cluster:', `    server: ${server}`,
          'users:', '- name: flannel', '  user:', '    token: s3cr3t-t0ken', 'contexts:', '- name: flannel', '  context:', '    cluster: kube', '    user: flannel', ''].join('\n'),
      );
      return file;
    };
    const viaFile = await KubeRegistry.open({ ...settings, apiUrl: undefined, kubeconfigFile: kubeconfig(api.url) }, log);
    expect(viaFile.description).toBe(`kube ${api.url} node vx-1`);
    await viaFile.storedAttrs();
    expect(api.authorizations.at(-1)).toBe('Bearer s3cr3t-t0ken');
    // A server that answers nothing, replaced by the API URL as client-go's BuildConfigFromFlags does.
    const overridden = await KubeRegistry.open({ ...settings, kubeconfigFile: kubeconfig('http://127.0.0.1:9') }, log);
    await overridden.storedAttrs();
    expect(api.authorizations.at(-1)).toBe('Bearer s3cr3t-t0ken');
    await expect(KubeRegistry.open({ ...settings, apiUrl: undefined, env: { NODE_NAME: 'vx-1' } }, log)).rejects.toThrow(/not running in a cluster .*give --kube-api-url or --kubeconfig-file/);
    await expect(KubeRegistry.open({ ...settings, kubeconfigFile: join(dir, 'absent') }, log)).rejects.toMatchObject({ field: 'kubeconfig-file', transient: false });
    await expect(KubeRegistry.open({ ...settings, annotationPrefix: 'org' }, log)).rejects.toMatchObject({ field: 'kube-annotation-prefix' });
  });

  it('a dual-stack net-conf.json: publishes both families, takes both podCIDRs, and reads peers as dual-stack leases', async () => {
    writeFileSync(settings.netConfPath!, '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}');
    api.updateNode('vx-1', (n) => (n.spec = { podCIDR: '10.244.5.0/24', podCIDRs: ['10.244.5.0/24', 'fd00:10:244:5::/64'] }));
    api.updateNode('worker-1', (n) => {
      n.spec = { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] };
      n.metadata.annotations![`${PREFIX}public-ipv6`] = '2001:db8::11';
      n.metadata.annotations![`${PREFIX}backend-v6-data`] = '{"VNI":1,"VtepMAC":"6e:cd:b5:5e:5a:61"}';
    });
    const { manager, events } = await startNode('0e:aa:bb:cc:dd:01', { publicIpv6: '2001:db8::1', vtepMac6: macFromString('0e:aa:bb:cc:dd:06') });
    expect(cidrToString(manager.subnet)).toBe('10.244.5.0/24');
    expect(cidrToString(manager.subnet6!)).toBe('fd00:10:244:5::/64');
    expect(api.node('vx-1')!.metadata.annotations).toMatchObject({ [`${PREFIX}public-ipv6`]: '2001:db8::1', [`${PREFIX}backend-v6-data`]: '{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:06"}', [`${PREFIX}public-ip`]: '198.18.0.1' });
    manager.start();
    await until('the first routes', () => (events.length > 0 ? true : undefined));
    expect(events.at(-1)!.map((r) => `${cidrToString(r.prefix)}@${r.target.endpoint.address} ${macToString(r.target.vtepMac)}`).sort()).toEqual(['10.244.1.0/24@198.18.0.11 6e:cd:b5:5e:5a:01', 'fd00:10:244:1::/64@2001:db8::11 6e:cd:b5:5e:5a:61']);
  });

  it('waits for a podCIDR, refuses one outside the network, and reads net-conf.json from its path', async () => {
    api.updateNode('vx-1', (n) => (n.spec = {}));
    const registry = await KubeRegistry.open(settings, log);
    cleanups.push(() => registry.close());
    const network = parseNetworkConfig(await registry.getNetworkConfig(), 'net-conf.json').network;
    const value = encodeLeaseValue('198.18.0.1', { type: 'vxlan', vni: 1, vtepMac: macFromString('0e:aa:bb:cc:dd:01') });
    const unassigned = await registry.publishLease(value, network).catch((e: unknown) => e);
    expect(unassigned).toBeInstanceOf(RegistryError);
    expect((unassigned as RegistryError).message).toBe('node "vx-1" pod cidr not assigned');
    expect((unassigned as RegistryError).transient).toBe(true);
    api.updateNode('vx-1', (n) => (n.spec = { podCIDR: '10.96.0.0/24' }));
    const outside = await registry.publishLease(value, network).catch((e: unknown) => e);
    expect((outside as RegistryError).transient).toBe(false);
    expect((outside as RegistryError).message).toBe('subnet "10.244.0.0/16" specified in the flannel net config doesn\'t contain "10.96.0.0/24" PodCIDR of the "vx-1" node');
    const missing = await KubeRegistry.open({ ...settings, netConfPath: join(dir, 'absent.json') }, log);
    await expect(missing.getNetworkConfig()).rejects.toThrow(`failed to read net conf "${join(dir, 'absent.json')}": ENOENT`);
  });
});
