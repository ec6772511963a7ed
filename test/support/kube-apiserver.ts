/**
 * A stand-in for kube-apiserver (none can be installed on these machines), on loopback only, that
 * speaks the subset of the core/v1 API flannel's kube subnet manager uses, as the API server sends it
 * (docs/testing.md lists the behaviours):
 *  - GET  /api/v1/nodes                          NodeList with metadata.resourceVersion
 *  - GET  /api/v1/nodes?watch=true&resourceVersion=N   chunked JSON lines {"type","object"}: ADDED,
 *        MODIFIED, DELETED after N in order; BOOKMARK when asked (allowWatchBookmarks); no or "0"
 *        version: ADDED for every node first; N older than the retained history: 410 Gone, as an
 *        ERROR event carrying a Status (default) or as an HTTP 410, then the stream ends
 *  - GET  /api/v1/nodes/<name>, GET /api/v1/namespaces/<ns>/pods/<name>   the object or a 404 Status
 *  - PATCH /api/v1/nodes/<name>/status  application/strategic-merge-patch+json (maps merged,
 *        null deletes, lists replaced except status.conditions and status.addresses merged by
 *        `type`) or application/merge-patch+json (RFC 7386: every list replaced); spec is left as
 *        it was (the status subresource); metadata.resourceVersion in a patch is a precondition (409);
 *        any other content type 415
 * Every change bumps one global resourceVersion, as etcd's revision does.
 */
import { createServer, type Server, type ServerResponse, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export interface KubeNode {
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string>; labels?: Record<string, string>; [k: string]: unknown };
  spec?: { podCIDR?: string; podCIDRs?: string[]; [k: string]: unknown };
  status?: { conditions?: Array<Record<string, unknown>>; addresses?: Array<Record<string, unknown>>; [k: string]: unknown };
}

export interface RecordedPatch {
  name: string;
  contentType: string;
  body: string;
}

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

/** Lists merged by key under strategic merge (the core/v1 Node's patchMergeKey "type" lists). */
const MERGE_KEYS: Record<string, string> = { 'status.conditions': 'type', 'status.addresses': 'type' };

const clone = <T>(v: T): T => structuredClone(v);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function mergePatch(target: Json | undefined, patch: Json, strategic: boolean, path: string): Json {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    const here = path ? `${path}.${k}` : k;
    if (v === null) delete out[k];
    else if (strategic && Array.isArray(v) && MERGE_KEYS[here] && Array.isArray(out[k])) {
      const key = MERGE_KEYS[here]!;
      const merged = (out[k] as Json[]).map((e) => clone(e));
      for (const item of v) {
        const at = merged.findIndex((e) => isObj(e) && isObj(item) && e[key] === item[key]);
        if (at >= 0) merged[at] = mergePatch(merged[at], item, strategic, here);
        else merged.push(clone(item));
      }
      out[k] = merged;
    } else out[k] = mergePatch(out[k], v, strategic, here);
  }
  return out;
}

function status(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

export class FakeKubeApiServer {
  private readonly server: Server;
  /** The same API on a unix socket, for clients in other network namespaces (each has its own loopback). */
  private unixServer: Server | undefined;
  private readonly nodes = new Map<string, Obj>();
  private readonly pods = new Map<string, Obj>();
  private revision = 1;
  private history: WatchEvent[] = [];
  /** Events at or below this version are gone: a watch from before it gets 410. */
  private compactedAt = 0;
  private readonly watchers = new Set<{ res: ServerResponse; send(line: Obj): void; bookmarks: boolean }>();
  /** Every PATCH received, in order. */
  readonly patches: RecordedPatch[] = [];
  /** Every request line received ("GET /api/v1/nodes?watch=true&resourceVersion=5"), in order. */
  readonly requests: string[] = [];
  /** The Authorization header of every request (no check is made: the stand-in has no authentication). */
  readonly authorizations: Array<string | undefined> = [];
  /** How a too-old watch is refused: an ERROR event in a 200 stream (what the watch cache does) or HTTP 410. */
  goneAs: 'event' | 'http' = 'event';
  url = '';

  constructor() {
    this.server = this.httpServer();
  }

  private httpServer(): Server {
    return createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => this.handle(req, res, body));
    });
  }

  /** Listens on 127.0.0.1 (an ephemeral port), and on `socketPath` too when given. */
  async start(socketPath?: string): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    if (socketPath !== undefined) {
      const unix = this.httpServer();
      await new Promise<void>((resolve) => unix.listen(socketPath, resolve));
      this.unixServer = unix;
    }
    return this;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    for (const server of [this.server, this.unixServer]) {
      if (!server) continue;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  get resourceVersion(): string {
    return String(this.revision);
  }

  node(name: string): KubeNode | undefined {
    const n = this.nodes.get(name);
    return n ? (clone(n) as unknown as KubeNode) : undefined;
  }

  addPod(namespace: string, name: string, nodeName: string): void {
    this.pods.set(`${namespace}/${name}`, { kind: 'Pod', apiVersion: 'v1', metadata: { name, namespace }, spec: { nodeName } });
  }

  /** A node appears (kubelet registering it). */
  addNode(node: KubeNode): void {
    const obj = clone(node) as unknown as Obj;
    this.record('ADDED', obj);
  }

  /** A node changes (the test playing another flanneld or an operator). */
  updateNode(name: string, change: (n: KubeNode) => void): void {
    const obj = clone(this.nodes.get(name)!) as unknown as KubeNode;
    change(obj);
    this.record('MODIFIED', obj as unknown as Obj);
  }

  deleteNode(name: string): void {
    const obj = this.nodes.get(name);
    if (!obj) throw new Error(`no node ${name}`);
    this.nodes.delete(name);
    this.revision++;
    const gone = clone(obj);
    (gone.metadata as Obj).resourceVersion = String(this.revision);
    this.history.push({ rv: this.revision, type: 'DELETED', object: gone });
    this.broadcast({ type: 'DELETED', object: this.withKind(gone) });
  }

  /** Forgets the history up to now (etcd compaction): watches from older versions get 410 Gone. */
  compact(): void {
    this.compactedAt = this.revision;
    this.history = [];
  }

  /** Ends every open watch with a 410 ERROR event, as the API server does to a watcher it dropped behind. */
  expireWatches(): void {
    for (const w of [...this.watchers]) {
      w.send({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${this.compactedAt} (${this.revision})`) });
      w.res.end();
      this.watchers.delete(w);
    }
  }

  /** Ends every open watch normally, as the API server does when a watch's timeout runs out. */
  closeWatches(): void {
    for (const w of [...this.watchers]) {
      w.res.end();
      this.watchers.delete(w);
    }
  }

  /** Sends a BOOKMARK with the current version to watchers that allowed bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (w.bookmarks) w.send({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.revision) } } });
    }
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  private withKind(obj: Obj): Obj {
    return { kind: 'Node', apiVersion: 'v1', ...obj };
  }

  private record(type: 'ADDED' | 'MODIFIED', obj: Obj): void {
    this.revision++;
    (obj.metadata as Obj).resourceVersion = String(this.revision);
    this.nodes.set((obj.metadata as Obj).name as string, obj);
    this.history.push({ rv: this.revision, type, object: clone(obj) });
    this.broadcast({ type, object: this.withKind(clone(obj)) });
  }

  private broadcast(event: Obj): void {
    for (const w of this.watchers) w.send(event);
  }

  private reply(res: ServerResponse, code: number, body: Obj): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    this.authorizations.push(req.headers.authorization);
    const parts = url.pathname.split('/').filter(Boolean);
    const isApiV1 = parts[0] === 'api' && parts[1] === 'v1';
    if (req.method === 'GET' && isApiV1 && parts[2] === 'nodes' && parts.length === 3) {
      const watching = url.searchParams.get('watch');
      if (watching === 'true' || watching === '1') return this.watch(url, res);
      const items = [...this.nodes.values()].map((n) => clone(n));
      return this.reply(res, 200, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(this.revision) }, items });
    }
    if (req.method === 'GET' && isApiV1 && parts[2] === 'nodes' && parts.length === 4) {
      const n = this.nodes.get(parts[3]!);
      return n ? this.reply(res, 200, this.withKind(clone(n))) : this.reply(res, 404, status(404, 'NotFound', `nodes "${parts[3]}" not found`, { name: parts[3]!, kind: 'nodes' }));
    }
    if (req.method === 'GET' && isApiV1 && parts[2] === 'namespaces' && parts[4] === 'pods' && parts.length === 6) {
      const p = this.pods.get(`${parts[3]}/${parts[5]}`);
      return p ? this.reply(res, 200, clone(p)) : this.reply(res, 404, status(404, 'NotFound', `pods "${parts[5]}" not found`, { name: parts[5]!, kind: 'pods' }));
    }
    if (req.method === 'PATCH' && isApiV1 && parts[2] === 'nodes' && parts[4] === 'status' && parts.length === 5) {
      return this.patchStatus(parts[3]!, req.headers['content-type'] ?? '', body, res);
    }
    this.reply(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  private patchStatus(name: string, contentType: string, body: string, res: ServerResponse): void {
    this.patches.push({ name, contentType, body });
    const type = contentType.split(';')[0]!.trim();
    if (type !== 'application/strategic-merge-patch+json' && type !== 'application/merge-patch+json') {
      return this.reply(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`));
    }
    const current = this.nodes.get(name);
    if (!current) return this.reply(res, 404, status(404, 'NotFound', `nodes "${name}" not found`, { name, kind: 'nodes' }));
    let patch: Json;
    try {
      patch = JSON.parse(body) as Json;
    } catch (err) {
      return this.reply(res, 400, status(400, 'BadRequest', `error decoding patch: ${(err as Error).message}`));
    }
    if (!isObj(patch)) return this.reply(res, 400, status(400, 'BadRequest', 'patch is not a JSON object'));
    const wanted = isObj(patch.metadata) ? patch.metadata.resourceVersion : undefined;
    if (typeof wanted === 'string' && wanted !== (current.metadata as Obj).resourceVersion) {
      return this.reply(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on nodes "${name}": the object has been modified; please apply your changes to the latest version and try again`));
    }
    const merged = mergePatch(clone(current), patch, type === 'application/strategic-merge-patch+json', '') as Obj;
    // The status subresource: spec stays as it was.
    if (current.spec === undefined) delete merged.spec;
    else merged.spec = clone(current.spec);
    (merged.metadata as Obj).name = name;
    if (JSON.stringify({ ...merged, metadata: { ...(merged.metadata as Obj), resourceVersion: null } }) === JSON.stringify({ ...current, metadata: { ...(current.metadata as Obj), resourceVersion: null } })) {
      // A no-op patch changes nothing and bumps no version, as the API server's update path does.
      return this.reply(res, 200, this.withKind(clone(current)));
    }
    this.record('MODIFIED', merged);
    this.reply(res, 200, this.withKind(clone(merged)));
  }

  private watch(url: URL, res: ServerResponse): void {
    const from = url.searchParams.get('resourceVersion') ?? '';
    const since = from === '' || from === '0' ? undefined : Number(from);
    const tooOld = since !== undefined && (!Number.isInteger(since) || since < this.compactedAt);
    if (tooOld && this.goneAs === 'http') {
      return this.reply(res, 410, status(410, 'Expired', `too old resource version: ${from} (${this.revision})`));
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    const send = (line: Obj): void => void res.write(`${JSON.stringify(line)}\n`);
    if (tooOld) {
      send({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.revision})`) });
      res.end();
      return;
    }
    if (since === undefined) for (const n of this.nodes.values()) send({ type: 'ADDED', object: this.withKind(clone(n)) });
    else for (const ev of this.history) if (ev.rv > since) send({ type: ev.type, object: this.withKind(clone(ev.object)) });
    const watcher = { res, send, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    if (timeout > 0) setTimeout(() => res.end(), timeout * 1000).unref();
  }
}
