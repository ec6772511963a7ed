/**
 * flannel's Kubernetes subnet manager (pkg/subnet/kube) as pure rules over node objects:
 *  - the annotation keys under a prefix (annotations.go newAnnotations, with its refusals);
 *  - a node's lease (kube.go nodeToLease): subnet from spec.podCIDRs/podCIDR, attributes from the
 *    public-ip, backend-type and backend-data annotations; nodes without kube-subnet-manager "true" are
 *    not leases at all;
 *  - the strategic-merge patch AcquireLease sends (only the annotations that change, keys sorted as
 *    Go's json.Marshal sorts map keys), honouring public-ip-overwrite;
 *  - the stored VtepMAC (GetStoredMacAddresses, its string parse included) and public IP
 *    (GetStoredPublicIP: node-public-ip) read back on restart;
 *  - the NetworkUnavailable=False condition patch (CompleteLease).
 * Dual-stack (EnableIPv6) adds the IPv6 half as flannel does: the IPv6 podCIDR, public-ipv6 and
 * backend-v6-data, read into `&` lease keys and written by the same patch.
 */
import { isIPv6 } from 'node:net';
import { ipv4Mask } from '../../packet/cidr.js';
import { ipv4FromString, ipv4ToString, isIpv4String } from '../../packet/wire/ipv4.js';
import { ipv6FromString, ipv6ToString } from '../../packet/wire/ipv6.js';
import { isMacString } from '../../packet/wire/ethernet.js';
import { maskIpv6 } from '../../packet/cidr.js';
import type { Cidr4, Cidr6 } from './registry.js';

/** flanneld's --kube-annotation-prefix default. */
export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

export interface AnnotationKeys {
  subnetKubeManaged: string;
  backendData: string;
  backendV6Data: string;
  backendType: string;
  backendPublicIp: string;
  backendPublicIpv6: string;
  backendNodePublicIp: string;
  backendNodePublicIpv6: string;
  backendPublicIpOverwrite: string;
  backendPublicIpv6Overwrite: string;
}

export class AnnotationPrefixError extends Error {
  override readonly name = 'AnnotationPrefixError';
}

/** newAnnotations: "example.com" -> "example.com/", "example.com/x" -> "example.com/x-"; refuses what Kubernetes would. */
export function annotationKeys(prefix: string): AnnotationKeys {
  const slashes = prefix.split('/').length - 1;
  if (slashes > 1) throw new AnnotationPrefixError(`kube annotation prefix ${JSON.stringify(prefix)} can contain at most one slash`);
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  // Go's regexp.MatchString is unanchored at the start: only the end must match.
  if (!/(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/.test(p)) {
    throw new AnnotationPrefixError(`kube annotation prefix ${JSON.stringify(prefix)} must be in the format fqdn/[0-9a-z-_]*`);
  }
  return {
    subnetKubeManaged: `${p}kube-subnet-manager`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    backendType: `${p}backend-type`,
    backendPublicIp: `${p}public-ip`,
    backendPublicIpv6: `${p}public-ipv6`,
    backendNodePublicIp: `${p}node-public-ip`,
    backendNodePublicIpv6: `${p}node-public-ipv6`,
    backendPublicIpOverwrite: `${p}public-ip-overwrite`,
    backendPublicIpv6Overwrite: `${p}public-ipv6-overwrite`,
  };
}

/** The parts of a Node object the subnet manager reads. */
export interface NodeView {
  metadata?: { name?: string; annotations?: Record<string, string> | undefined; resourceVersion?: string };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
}

/** Go's net.ParseCIDR: host bits are allowed and masked off; v6 CIDRs parse but are not ours. */
function parsePodCidr(text: string): Cidr4 | 6 | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const [, addr, lenText] = m as unknown as [string, string, string];
  const len = Number(lenText);
  if (isIPv6(addr)) return len <= 128 ? 6 : undefined;
  if (!isIpv4String(addr) || len > 32) return undefined;
  return { family: 4, addr: (ipv4FromString(addr) & ipv4Mask(len)) >>> 0, prefixLen: len };
}

/**
 * The node's IPv4 pod subnet as flannel reads it: podCIDRs when set (at most two, one per family),
 * else podCIDR. A string says why there is none.
 */
export function nodeSubnet(node: NodeView): Cidr4 | string {
  const name = node.metadata?.name ?? '';
  const list = node.spec?.podCIDRs ?? [];
  if (list.length >= 3) return `node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`;
  const texts = list.length === 0 ? [node.spec?.podCIDR ?? ''] : list;
  if (texts[0] === '') return `node "${name}" pod cidr not assigned`;
  for (const t of texts) {
    const parsed = parsePodCidr(t);
    if (parsed === undefined) return `invalid CIDR address: ${t}`;
    if (parsed !== 6) return parsed;
  }
  return 'missing IPv4 address on n.Spec.PodCIDRs';
}

/** The node's IPv6 pod subnet (the IPv6 entry of podCIDRs, host bits masked as Go's ParseCIDR does); a string says why there is none. */
export function nodeSubnet6(node: NodeView): Cidr6 | string {
  const name = node.metadata?.name ?? '';
  const list = node.spec?.podCIDRs ?? [];
  if (list.length >= 3) return `node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`;
  const texts = list.length === 0 ? [node.spec?.podCIDR ?? ''] : list;
  for (const t of texts) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(t);
    if (m && isIPv6(m[1]!) && Number(m[2]) <= 128) return { family: 6, addr: maskIpv6(ipv6FromString(m[1]!), Number(m[2])), prefixLen: Number(m[2]) };
  }
  return 'missing IPv6 address on n.Spec.PodCIDRs';
}

export function isManaged(node: NodeView, keys: AnnotationKeys): boolean {
  return node.metadata?.annotations?.[keys.subnetKubeManaged] === 'true';
}

/**
 * nodeToLease: the lease a managed node stands for, as flannel's LeaseAttrs JSON (backend-data is
 * inserted raw, as Go's json.RawMessage is, so a malformed one makes the whole value unreadable
 * and the lease is ignored downstream). A string says why the node gives no lease.
 */
export function nodeLease(node: NodeView, keys: AnnotationKeys, opts: { ipv6?: boolean } = {}): { subnet: Cidr4; subnetKey: string; value: string } | string {
  const a = node.metadata?.annotations ?? {};
  const publicIp = a[keys.backendPublicIp] ?? '';
  if (!isIpv4String(publicIp)) return `invalid IPv4 address in ${keys.backendPublicIp}: ${JSON.stringify(publicIp)}`;
  const subnet = nodeSubnet(node);
  if (typeof subnet === 'string') return subnet;
  const backendType = a[keys.backendType] ?? '';
  const data = a[keys.backendData] ?? '';
  // The key flannel gives the lease in etcd, so the lease manager sees the same keys from every registry.
  const key = `${ipv4ToString(subnet.addr)}-${subnet.prefixLen}`;
  if (!opts.ipv6) {
    const value = `{"PublicIP":${JSON.stringify(publicIp)},"PublicIPv6":null,"BackendType":${JSON.stringify(backendType)},"BackendData":${data === '' ? 'null' : data}}`;
    return { subnet, subnetKey: key, value };
  }
  const publicIpv6 = a[keys.backendPublicIpv6] ?? '';
  if (!isIPv6(publicIpv6)) return `invalid IPv6 address in ${keys.backendPublicIpv6}: ${JSON.stringify(publicIpv6)}`;
  const subnet6 = nodeSubnet6(node);
  if (typeof subnet6 === 'string') return subnet6;
  const data6 = a[keys.backendV6Data] ?? '';
  const value =
    `{"PublicIP":${JSON.stringify(publicIp)},"PublicIPv6":${JSON.stringify(publicIpv6)},"BackendType":${JSON.stringify(backendType)},` +
    `"BackendData":${data === '' ? 'null' : data},"BackendV6Data":${data6 === '' ? 'null' : data6}}`;
  return { subnet, subnetKey: `${key}&${ipv6ToString(subnet6.addr)}-${subnet6.prefixLen}`, value };
}

/** What this node publishes: flannel's LeaseAttrs for an IPv4 lease. */
export interface PublishedAttrs {
  publicIp: string;
  backendType: string;
  /** The backend data JSON exactly as it goes into the annotation (`{"VNI":1,"VtepMAC":"..."}`), or "null". */
  backendData: string;
  /** Dual-stack: public-ipv6 and backend-v6-data (same form as backendData). */
  publicIpv6?: string;
  backendV6Data?: string;
}

/**
 * AcquireLease's annotation patch: undefined when the node already says all of it; otherwise the
 * strategic-merge patch CreateTwoWayMergePatch gives for the changed annotations, which is `{}`
 * when only a public-ip-overwrite differing from our address triggered the rewrite.
 */
export function annotationPatch(node: NodeView, attrs: PublishedAttrs, keys: AnnotationKeys): { body: string; publicIp: string } | undefined {
  const before = node.metadata?.annotations ?? {};
  const get = (k: string): string => before[k] ?? '';
  const overwrite = get(keys.backendPublicIpOverwrite);
  const overwrite6 = get(keys.backendPublicIpv6Overwrite);
  const v6 = attrs.publicIpv6 !== undefined;
  const stale6 = v6 && (get(keys.backendV6Data) !== attrs.backendV6Data || get(keys.backendPublicIpv6) !== attrs.publicIpv6 || (overwrite6 !== '' && overwrite6 !== attrs.publicIpv6));
  const stale =
    stale6 ||
    get(keys.backendData) !== attrs.backendData ||
    get(keys.backendType) !== attrs.backendType ||
    get(keys.backendPublicIp) !== attrs.publicIp ||
    get(keys.subnetKubeManaged) !== 'true' ||
    (overwrite !== '' && overwrite !== attrs.publicIp);
  if (!stale) return undefined;
  const after: Record<string, string> = { ...before };
  after[keys.backendType] = attrs.backendType;
  if ((attrs.backendType === 'vxlan' && attrs.backendData !== 'null') || attrs.backendType !== 'vxlan') {
    after[keys.backendData] = attrs.backendData;
    if (overwrite !== '') after[keys.backendPublicIp] = overwrite;
    else after[keys.backendPublicIp] = attrs.publicIp;
  }
  if (v6) {
    after[keys.backendV6Data] = attrs.backendV6Data ?? 'null';
    after[keys.backendPublicIpv6] = overwrite6 !== '' ? overwrite6 : attrs.publicIpv6!;
  }
  after[keys.subnetKubeManaged] = 'true';
  const changed = Object.keys(after)
    .filter((k) => before[k] !== after[k])
    .sort();
  const annotations = Object.fromEntries(changed.map((k) => [k, after[k]!]));
  const body = changed.length === 0 ? '{}' : JSON.stringify({ metadata: { annotations } });
  return { body, publicIp: after[keys.backendPublicIp] ?? attrs.publicIp };
}

/**
 * GetStoredMacAddresses: the VtepMAC of a previous run, read back from `<prefix>/backend-data` with
 * flannel's own string parse (trim `"` and `}`, split on `:"`), so a value flannel would not read
 * back is not read back here either. `rawPrefix` is the prefix as given on the command line.
 */
export function storedVtepMac(node: NodeView, rawPrefix: string): string | undefined {
  const data = node.metadata?.annotations?.[`${rawPrefix}/backend-data`];
  if (data === undefined) return undefined;
  const trimmed = data.replace(/^["}]+|["}]+$/g, '');
  const parts = trimmed.split(':"');
  if (parts.length !== 2) return undefined;
  // flanneld logs a MAC it cannot parse and lets the kernel pick one: so do we (the caller's default).
  return isMacString(parts[1]!) ? parts[1]!.toLowerCase() : undefined;
}

/** GetStoredPublicIP: the operator's node-public-ip annotation, which replaces --public-ip. */
export function storedPublicIp(node: NodeView, keys: AnnotationKeys): string | undefined {
  const v = node.metadata?.annotations?.[keys.backendNodePublicIp];
  return v === undefined || v === '' ? undefined : v;
}

/** Go's metav1.Time JSON: RFC 3339 in UTC, whole seconds. */
export function kubeTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** CompleteLease's status patch, field order as Go marshals v1.NodeCondition. */
export function networkAvailablePatch(now: Date): string {
  const t = kubeTime(now);
  const condition = {
    type: 'NetworkUnavailable',
    status: 'False',
    lastHeartbeatTime: t,
    lastTransitionTime: t,
    reason: 'FlannelIsUp',
    message: 'Flannel is running on this node',
  };
  return `{"status":{"conditions":${JSON.stringify([condition])}}}`;
}
