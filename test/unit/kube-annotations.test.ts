/**
 * flannel's kube subnet manager rules (pkg/subnet/kube) against flannel's own strings: the annotation
 * keys for each prefix of flannel's annotations_test.go, a node annotated by flanneld read as a lease,
 * the patch AcquireLease sends (bytes), public-ip-overwrite, the stored VtepMAC and node-public-ip,
 * and CompleteLease's condition patch (bytes).
 */
import { describe, expect, it } from 'vitest';
import { annotationKeys, annotationPatch, networkAvailablePatch, nodeLease, nodeSubnet, nodeSubnet6, storedPublicIp, storedVtepMac, type NodeView } from '../../src/control/registry/kube-annotations.js';
import { decodeLeaseValue, encodeLeaseValue, judgeLease, leaseRoute, parseNetworkConfig } from '../../src/control/flannel.js';
import { cidrToString, type Cidr } from '../../src/packet/cidr.js';
import { macFromString, macToString } from '../../src/packet/wire/ethernet.js';

const keys = annotationKeys('flannel.alpha.coreos.com');

/** A node as `kubectl get node -o json` shows one that flanneld v0.26 (vxlan) has annotated. */
const flannelNode = (): NodeView => ({
  metadata: {
    name: 'worker-1',
    annotations: {
      'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"6e:cd:b5:5e:5a:b9"}',
      'flannel.alpha.coreos.com/backend-type': 'vxlan',
      'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
      'flannel.alpha.coreos.com/public-ip': '198.18.0.11',
      'node.alpha.kubernetes.io/ttl': '0',
    },
  },
  spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
});

describe('annotation keys (annotations.go newAnnotations)', () => {
  it.each([
    ['flannel.alpha.coreos.com', 'flannel.alpha.coreos.com/backend-type'],
    ['flannel.alpha.coreos.com/', 'flannel.alpha.coreos.com/backend-type'],
    ['flannel.alpha.coreos.com/prefix', 'flannel.alpha.coreos.com/prefix-backend-type'],
    ['flannel.alpha.coreos.com/prefix-', 'flannel.alpha.coreos.com/prefix-backend-type'],
    ['org.com', 'org.com/backend-type'],
    ['org9.com', 'org9.com/backend-type'],
    ['org.com/9', 'org.com/9-backend-type'],
  ])('%s -> %s', (prefix, backendType) => {
    expect(annotationKeys(prefix).backendType).toBe(backendType);
  });

  it.each(['org', 'org/', 'org/prefix', 'org.COM', 'org.com/PREFIX', 'a.b/c/d'])('refuses %s', (prefix) => {
    expect(() => annotationKeys(prefix)).toThrow(/kube annotation prefix/);
  });

  it('names every annotation flannel uses', () => {
    expect(Object.values(keys).sort()).toEqual(
      [
        'backend-data',
        'backend-type',
        'backend-v6-data',
        'kube-subnet-manager',
        'node-public-ip',
        'node-public-ipv6',
        'public-ip',
        'public-ip-overwrite',
        'public-ipv6',
        'public-ipv6-overwrite',
      ].map((k) => `flannel.alpha.coreos.com/${k}`),
    );
  });
});

describe('a node as a lease (nodeToLease)', () => {
  it("reads flanneld's annotations into the lease a vxlan node routes by", () => {
    const lease = nodeLease(flannelNode(), keys);
    if (typeof lease === 'string') throw new Error(lease);
    expect(cidrToString(lease.subnet)).toBe('10.244.1.0/24');
    expect(lease.subnetKey).toBe('10.244.1.0-24');
    const attrs = decodeLeaseValue(lease.value)!;
    const network = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}', 'net-conf.json');
    const route = leaseRoute(lease.subnet, attrs, network.backend)!;
    expect(route.target.endpoint).toEqual({ address: '198.18.0.11', port: 8472 });
    expect(macToString(route.target.vtepMac)).toBe('6e:cd:b5:5e:5a:b9');
    expect(route.target.vni).toBe(1);
  });

  it('takes the IPv4 entry of a dual-stack podCIDRs, and podCIDR when podCIDRs is absent (host bits masked as Go does)', () => {
    expect(cidrToString(nodeSubnet({ spec: { podCIDR: 'fd00:10:244:1::/64', podCIDRs: ['fd00:10:244:1::/64', '10.244.7.0/24'] } }) as never)).toBe('10.244.7.0/24');
    expect(cidrToString(nodeSubnet({ spec: { podCIDR: '10.244.9.5/24' } }) as never)).toBe('10.244.9.0/24');
  });

  it.each<[string, NodeView, RegExp]>([
    ['no podCIDR', { metadata: { name: 'n' }, spec: {} }, /node "n" pod cidr not assigned/],
    ['three podCIDRs', { metadata: { name: 'n' }, spec: { podCIDRs: ['10.244.1.0/24', '10.244.2.0/24', 'fd00::/64'] } }, /IPv4\/IPv6 only or dualstack/],
    ['an IPv6-only node', { spec: { podCIDRs: ['fd00::/64'] } }, /missing IPv4 address/],
    ['a podCIDR that is not a CIDR', { spec: { podCIDR: '10.244.1.0' } }, /invalid CIDR address: 10.244.1.0/],
  ])('no subnet for %s', (_what, node, why) => {
    expect(nodeSubnet(node)).toMatch(why);
  });

  it('refuses a node whose public-ip is not an IPv4 address, and makes a malformed backend-data unreadable', () => {
    const bad = flannelNode();
    bad.metadata!.annotations!['flannel.alpha.coreos.com/public-ip'] = 'worker-1';
    expect(nodeLease(bad, keys)).toMatch(/invalid IPv4 address in flannel.alpha.coreos.com\/public-ip: "worker-1"/);
    const garbled = flannelNode();
    garbled.metadata!.annotations!['flannel.alpha.coreos.com/backend-data'] = '{"VNI":1,';
    const lease = nodeLease(garbled, keys);
    expect(typeof lease === 'string' ? lease : decodeLeaseValue(lease.value)).toBeUndefined();
  });
});

describe('a dual-stack network (EnableIPv6): both address families in the annotations', () => {
  const dualNode = (): NodeView => {
    const n = flannelNode();
    n.metadata!.annotations!['flannel.alpha.coreos.com/backend-v6-data'] = '{"VNI":1,"VtepMAC":"6e:cd:b5:5e:5a:ba"}';
    n.metadata!.annotations!['flannel.alpha.coreos.com/public-ipv6'] = '2001:db8::11';
    n.spec = { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] };
    return n;
  };

  it("reads a flanneld dual-stack node into a dual-stack lease (the `&` key, PublicIPv6, BackendV6Data) routed in both families", () => {
    const lease = nodeLease(dualNode(), keys, { ipv6: true });
    if (typeof lease === 'string') throw new Error(lease);
    expect(lease.subnetKey).toBe('10.244.1.0-24&fd00:10:244:1::-64');
    expect(JSON.parse(lease.value)).toEqual({ PublicIP: '198.18.0.11', PublicIPv6: '2001:db8::11', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '6e:cd:b5:5e:5a:b9' }, BackendV6Data: { VNI: 1, VtepMAC: '6e:cd:b5:5e:5a:ba' } });
    const network = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}', 'net-conf.json');
    const own = { subnet: { family: 4 as const, addr: 0x0af40500, prefixLen: 24 }, publicIp: '198.18.0.1' };
    expect(judgeLease(lease.subnetKey, lease.value, network, own)).toMatchObject({ route: { target: { endpoint: { address: '198.18.0.11' } } }, route6: { target: { endpoint: { address: '2001:db8::11' } } } });
    // the same node in an IPv4-only network is an IPv4 lease; without an IPv6 podCIDR or public-ipv6 it is no dual-stack lease
    expect(nodeLease(dualNode(), keys)).toMatchObject({ subnetKey: '10.244.1.0-24' });
    expect(nodeLease(flannelNode(), keys, { ipv6: true })).toBe('invalid IPv6 address in flannel.alpha.coreos.com/public-ipv6: ""');
    const v4only = dualNode();
    v4only.spec = { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] };
    expect(nodeLease(v4only, keys, { ipv6: true })).toBe('missing IPv6 address on n.Spec.PodCIDRs');
    expect(cidrToString(nodeSubnet6(dualNode()) as Cidr)).toBe('fd00:10:244:1::/64');
  });

  it('publishes backend-v6-data and public-ipv6 beside the IPv4 annotations, honouring public-ipv6-overwrite', () => {
    const attrs = { publicIp: '198.18.0.1', backendType: 'vxlan', backendData: '{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:01"}', publicIpv6: '2001:db8::1', backendV6Data: '{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:06"}' };
    const fresh: NodeView = { metadata: { name: 'vx-1', annotations: {} }, spec: { podCIDRs: ['10.244.5.0/24', 'fd00:10:244:5::/64'] } };
    expect(JSON.parse(annotationPatch(fresh, attrs, keys)!.body)).toEqual({
      metadata: {
        annotations: {
          'flannel.alpha.coreos.com/backend-data': attrs.backendData,
          'flannel.alpha.coreos.com/backend-type': 'vxlan',
          'flannel.alpha.coreos.com/backend-v6-data': attrs.backendV6Data,
          'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
          'flannel.alpha.coreos.com/public-ip': '198.18.0.1',
          'flannel.alpha.coreos.com/public-ipv6': '2001:db8::1',
        },
      },
    });
    const done: NodeView = { metadata: { name: 'vx-1', annotations: JSON.parse(annotationPatch(fresh, attrs, keys)!.body).metadata.annotations }, spec: fresh.spec! };
    expect(annotationPatch(done, attrs, keys)).toBeUndefined();
    done.metadata!.annotations!['flannel.alpha.coreos.com/public-ipv6-overwrite'] = '2001:db8::99';
    expect(JSON.parse(annotationPatch(done, attrs, keys)!.body)).toEqual({ metadata: { annotations: { 'flannel.alpha.coreos.com/public-ipv6': '2001:db8::99' } } });
  });
});

describe('publishing our lease (AcquireLease)', () => {
  const ours = (publicIp = '198.18.0.1') => {
    const v = JSON.parse(encodeLeaseValue(publicIp, { type: 'vxlan', vni: 1, vtepMac: macFromString('0e:aa:bb:cc:dd:01') })) as { BackendData: unknown };
    return { publicIp, backendType: 'vxlan', backendData: JSON.stringify(v.BackendData) };
  };
  const bare = (annotations: Record<string, string> = {}): NodeView => ({ metadata: { name: 'vx-1', annotations }, spec: { podCIDR: '10.244.5.0/24' } });

  it("patches a fresh node with exactly flanneld's strategic-merge patch (changed annotations, keys sorted)", () => {
    const patch = annotationPatch(bare({ 'node.alpha.kubernetes.io/ttl': '0' }), ours(), keys)!;
    expect(patch.body).toBe(
      '{"metadata":{"annotations":{' +
        '"flannel.alpha.coreos.com/backend-data":"{\\"VNI\\":1,\\"VtepMAC\\":\\"0e:aa:bb:cc:dd:01\\"}",' +
        '"flannel.alpha.coreos.com/backend-type":"vxlan",' +
        '"flannel.alpha.coreos.com/kube-subnet-manager":"true",' +
        '"flannel.alpha.coreos.com/public-ip":"198.18.0.1"}}}',
    );
    expect(patch.publicIp).toBe('198.18.0.1');
  });

  it('sends nothing when the node already carries our lease, and only what changed otherwise', () => {
    const done = bare({
      'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"0e:aa:bb:cc:dd:01"}',
      'flannel.alpha.coreos.com/backend-type': 'vxlan',
      'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
      'flannel.alpha.coreos.com/public-ip': '198.18.0.1',
    });
    expect(annotationPatch(done, ours(), keys)).toBeUndefined();
    expect(annotationPatch(done, ours('198.18.0.2'), keys)!.body).toBe('{"metadata":{"annotations":{"flannel.alpha.coreos.com/public-ip":"198.18.0.2"}}}');
  });

  it('publishes public-ip-overwrite instead of our address, and re-sends `{}` each start as flanneld does', () => {
    const overwritten = bare({ 'flannel.alpha.coreos.com/public-ip-overwrite': '203.0.113.9' });
    const first = annotationPatch(overwritten, ours(), keys)!;
    expect(JSON.parse(first.body).metadata.annotations['flannel.alpha.coreos.com/public-ip']).toBe('203.0.113.9');
    expect(first.publicIp).toBe('203.0.113.9');
    const after = bare({ ...overwritten.metadata!.annotations, ...JSON.parse(first.body).metadata.annotations });
    expect(annotationPatch(after, ours(), keys)!.body).toBe('{}');
  });
});

describe('read back on restart (GetStoredMacAddresses, GetStoredPublicIP)', () => {
  it("keeps the VtepMAC flanneld wrote, with flannel's own parse", () => {
    expect(storedVtepMac(flannelNode(), 'flannel.alpha.coreos.com')).toBe('6e:cd:b5:5e:5a:b9');
    // flannel's parse finds no `:"` after a space-separated value: no MAC, as for flanneld.
    const spaced = flannelNode();
    spaced.metadata!.annotations!['flannel.alpha.coreos.com/backend-data'] = '{"VNI": 1, "VtepMAC": "6e:cd:b5:5e:5a:b9"}';
    expect(storedVtepMac(spaced, 'flannel.alpha.coreos.com')).toBeUndefined();
    expect(storedVtepMac({ metadata: { annotations: {} } }, 'flannel.alpha.coreos.com')).toBeUndefined();
  });

  it('takes node-public-ip as our address', () => {
    expect(storedPublicIp({ metadata: { annotations: { 'flannel.alpha.coreos.com/node-public-ip': '198.18.0.7' } } }, keys)).toBe('198.18.0.7');
    expect(storedPublicIp(flannelNode(), keys)).toBeUndefined();
  });
});

describe('the network is up (CompleteLease)', () => {
  it('is the NetworkUnavailable=False condition with reason FlannelIsUp, as Go marshals it', () => {
    expect(networkAvailablePatch(new Date('2026-12-07T04:44:22.731Z'))).toBe(
      '{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"2026-12-07T04:44:22Z","lastTransitionTime":"2026-12-07T04:44:22Z","reason":"FlannelIsUp","message":"Flannel is running on this node"}]}}',
    );
  });
});
