/**
 * The Kubernetes API stand-in (test/support/kube-apiserver.ts) answers as the API server does, for
 * what docs/testing.md says it implements: raw HTTP, no client in between.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer } from '../support/kube-apiserver.js';

const conditions = [
  { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' },
  { type: 'Ready', status: 'True', reason: 'KubeletReady' },
];

describe('the Kubernetes API stand-in', () => {
  let api: FakeKubeApiServer;
  beforeEach(async () => {
    api = await new FakeKubeApiServer().start();
    api.addNode({ metadata: { name: 'a', annotations: { keep: 'me' } }, spec: { podCIDR: '10.244.1.0/24' }, status: { conditions } });
  });
  afterEach(() => api.stop());

  const patch = (contentType: string, body: unknown): Promise<Response> =>
    fetch(`${api.url}/api/v1/nodes/a/status`, { method: 'PATCH', headers: { 'Content-Type': contentType }, body: JSON.stringify(body) });
  const networkUp = { status: { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp' }] } };

  it('merges conditions by type under a strategic-merge patch and replaces the list under a merge patch', async () => {
    expect((await patch('application/strategic-merge-patch+json', networkUp)).status).toBe(200);
    expect(api.node('a')!.status!.conditions!.map((c) => `${c.type}=${c.status}`)).toEqual(['NetworkUnavailable=False', 'Ready=True']);
    expect((await patch('application/merge-patch+json', networkUp)).status).toBe(200);
    expect(api.node('a')!.status!.conditions!.map((c) => `${c.type}=${c.status}`)).toEqual(['NetworkUnavailable=False']);
  });

  it('merges annotations, deletes on null, leaves spec alone on the status subresource, and refuses what it does not speak', async () => {
    await patch('application/strategic-merge-patch+json', { metadata: { annotations: { add: 'x', keep: null } }, spec: { podCIDR: '10.99.0.0/24' } });
    expect(api.node('a')!.metadata.annotations).toEqual({ add: 'x' });
    expect(api.node('a')!.spec).toEqual({ podCIDR: '10.244.1.0/24' });
    expect((await patch('application/json-patch+json', [])).status).toBe(415);
    const conflict = await patch('application/merge-patch+json', { metadata: { resourceVersion: '1', labels: { a: 'b' } } });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ kind: 'Status', reason: 'Conflict', code: 409 });
    expect((await fetch(`${api.url}/api/v1/nodes/nope`)).status).toBe(404);
  });

  it('lists with a resourceVersion and watches from it: events in order, BOOKMARKs, and 410 Gone for a compacted version', async () => {
    const list = (await (await fetch(`${api.url}/api/v1/nodes`)).json()) as { kind: string; metadata: { resourceVersion: string }; items: unknown[] };
    expect(list).toMatchObject({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: api.resourceVersion } });
    expect(list.items).toHaveLength(1);
    const from = list.metadata.resourceVersion;
    api.updateNode('a', (n) => (n.metadata.labels = { x: 'y' }));
    api.addNode({ metadata: { name: 'b' } });
    api.deleteNode('a');
    const res = await fetch(`${api.url}/api/v1/nodes?watch=true&resourceVersion=${from}&allowWatchBookmarks=true`);
    const reader = res.body!.getReader();
    let text = '';
    const readLines = async (n: number): Promise<Array<{ type: string; object: { kind: string; metadata: { name?: string; resourceVersion: string } } }>> => {
      while (text.split('\n').length <= n) text += new TextDecoder().decode((await reader.read()).value);
      return text.split('\n').slice(0, n).map((l) => JSON.parse(l));
    };
    const events = await readLines(3);
    expect(events.map((e) => `${e.type} ${e.object.kind} ${e.object.metadata.name}`)).toEqual(['MODIFIED Node a', 'ADDED Node b', 'DELETED Node a']);
    expect(events.map((e) => Number(e.object.metadata.resourceVersion))).toEqual([Number(from) + 1, Number(from) + 2, Number(from) + 3]);
    api.bookmark();
    expect((await readLines(4))[3]).toEqual({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: api.resourceVersion } } });
    await reader.cancel();

    api.compact();
    const gone = await (await fetch(`${api.url}/api/v1/nodes?watch=true&resourceVersion=${from}`)).text();
    expect(JSON.parse(gone.trim())).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    api.goneAs = 'http';
    expect((await fetch(`${api.url}/api/v1/nodes?watch=true&resourceVersion=${from}`)).status).toBe(410);
  });
});
