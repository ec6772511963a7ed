/**
 * deploy/: every Kubernetes manifest validates against the Kubernetes OpenAPI schemas (the
 * kubernetes-models package: schemas bundled, nothing fetched), and says what the operations guide
 * promises: only the labelled nodes, only NET_ADMIN and NET_RAW, host network, /dev/net/tun and
 * /run/flannel, probes on /healthz and /readyz at the port the ConfigMap sets; flannel's DaemonSet
 * patched to stay off those nodes; the systemd unit is Type=notify; the image runs `vxtun up`.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { packageRoot } from '../../src/util/package-root.js';

const deploy = join(packageRoot(), 'deploy');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
};

type Doc = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };

function manifests(file: string): Doc[] {
  return parseAllDocuments(readFileSync(join(deploy, 'kubernetes', file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  }).filter(Boolean);
}

/** Maps merged, everything else replaced (what a strategic merge does to the fields the patch sets). */
function merge(base: unknown, patch: unknown): unknown {
  if (typeof base !== 'object' || base === null || Array.isArray(base) || typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch)) out[k] = merge(out[k], v);
  return out;
}

function validate(doc: Doc): void {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) throw new Error(`${doc.kind} ${doc.apiVersion}: no schema here`);
  new Model(doc as never).validate();
}

describe('deploy/kubernetes', () => {
  const docs = manifests('kube-vxtun.yml');
  const byKind = (kind: string): Doc => docs.find((d) => d.kind === kind)!;

  it('every manifest validates against the Kubernetes schemas', () => {
    expect(docs.map((d) => d.kind)).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ServiceAccount', 'ConfigMap', 'DaemonSet']);
    for (const d of docs) expect(() => validate(d), `${d.kind} ${d.metadata.name}`).not.toThrow();
    // The patch, laid over a minimal flannel DaemonSet, still makes a valid one.
    const flannel = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'kube-flannel-ds' }, spec: { selector: { matchLabels: { app: 'flannel' } }, template: { metadata: { labels: { app: 'flannel' } }, spec: { containers: [{ name: 'kube-flannel', image: 'flannel' }] } } } };
    for (const p of manifests('kube-flannel-exclude.patch.yml')) expect(() => validate(merge(flannel, p) as Doc)).not.toThrow();
  });

  it('the validation refuses a broken manifest (it can fail)', () => {
    const ds = structuredClone(byKind('DaemonSet')) as unknown as { spec: { selector?: unknown; template: { spec: { containers: Array<{ securityContext: { capabilities: { add: unknown } } }> } } } };
    ds.spec.template.spec.containers[0]!.securityContext.capabilities.add = 'NET_ADMIN';
    expect(() => validate(ds as unknown as Doc)).toThrow('capabilities/add must be array');
    delete ds.spec.selector;
    expect(() => validate(ds as unknown as Doc)).toThrow('selector');
  });

  it('runs on the labelled nodes only, with the privileges it needs and no more, probed on /healthz and /readyz', () => {
    const spec = (byKind('DaemonSet') as unknown as { spec: { template: { spec: Record<string, any> } } }).spec.template.spec;
    const terms = spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    expect(terms).toEqual([{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }, { key: 'vxtun.io/dataplane', operator: 'In', values: ['vxtun'] }] }]);
    expect(spec.hostNetwork).toBe(true);
    const [c] = spec.containers;
    expect(c.args).toEqual(['--ip-masq', '--kube-subnet-mgr']);
    expect(c.securityContext).toEqual({ privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } });
    const hostPaths = Object.fromEntries(spec.volumes.filter((v: any) => v.hostPath).map((v: any) => [v.name, v.hostPath.path]));
    const mounted = new Set(c.volumeMounts.map((m: any) => m.name));
    expect(Object.entries(hostPaths).filter(([name]) => mounted.has(name))).toEqual([['run', '/run/flannel'], ['dev-net-tun', '/dev/net/tun'], ['xtables-lock', '/run/xtables.lock']]);
    const port = Number((byKind('ConfigMap') as unknown as { data: Record<string, string> }).data.FLANNELD_HEALTHZ_PORT);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port });
    expect(spec.serviceAccountName).toBe((byKind('ServiceAccount') as Doc).metadata.name);
  });

  it("RBAC grants what the kube subnet manager calls: get pods, get/list/watch nodes, patch nodes/status", () => {
    expect((byKind('ClusterRole') as unknown as { rules: unknown }).rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
    ]);
  });

  it("keeps flannel's DaemonSet off the labelled nodes", () => {
    const [patch] = manifests('kube-flannel-exclude.patch.yml') as unknown as Array<{ spec: { template: { spec: Record<string, any> } } }>;
    const exprs = patch!.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions;
    expect(exprs).toContainEqual({ key: 'vxtun.io/dataplane', operator: 'NotIn', values: ['vxtun'] });
  });
});

describe('deploy: systemd unit and image', () => {
  it('the unit is Type=notify and runs vxtun up with flanneld environment', () => {
    const unit = readFileSync(join(deploy, 'systemd', 'vxtun.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/vxtun up /m);
    expect(unit).toMatch(/^EnvironmentFile=-\/etc\/sysconfig\/flanneld$/m);
  });

  it('the image runs vxtun up', () => {
    expect(readFileSync(join(deploy, 'Containerfile'), 'utf8')).toMatch(/^ENTRYPOINT \["\/usr\/bin\/vxtun", "up"\]$/m);
  });
});
