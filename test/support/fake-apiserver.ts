// A protocol-faithful, in-process fake Kubernetes API server for Edgeport's tests: plain HTTP
// on 127.0.0.1, no authentication (a bearer token is accepted and ignored). It serves the
// discovery documents, core v1 services (+status), nodes (+status), namespaces (+status),
// events; discovery.k8s.io/v1 endpointslices; coordination.k8s.io/v1 leases; events.k8s.io/v1
// events (a second view of the core events, as upstream). Verbs: get, list (labelSelector,
// fieldSelector, limit/continue), watch (resume from a resourceVersion out of a bounded
// history, 410 Expired past it, bookmarks), create, update, patch (merge, strategic merge,
// JSON patch), delete (finalizers), deletecollection; server-side Tables for kubectl get.
// Faithfulness is proved against the real kubectl and @kubernetes/client-node in
// test/integration/fake-apiserver.test.ts.
//
//   const api = new FakeApiServer();
//   const url = await api.start();            // http://127.0.0.1:PORT
//   api.objects.put({apiVersion: 'v1', kind: 'Node', metadata: {name: 'n1'}, status: {...}});
//   await api.stop(); await api.start();      // away and back, same port, same state
//   api.dropWatches(); api.compact(); api.requests;
//   api.failNext({method: 'PUT', path: /leases/, code: 500});

import { once } from 'node:events';
import http from 'node:http';
import type { Socket } from 'node:net';
import { openapiGroupVersion, openapiRoot } from './fake-apiserver/openapi.ts';
import { mergePatch, jsonPatch, PatchError, strategicMergePatch } from './fake-apiserver/patch.ts';
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  findResource,
  groupVersion,
  groups,
  RESOURCES,
  versionInfo,
  type Obj,
  type ResourceType,
} from './fake-apiserver/resources.ts';
import { fieldSelector, labelSelector } from './fake-apiserver/selectors.ts';
import { ApiError, badRequest, methodNotAllowed, pathNotFound, unsupportedMediaType } from './fake-apiserver/status.ts';
import { Store, toView, type EventType } from './fake-apiserver/store.ts';
import { toTable, wantsTable } from './fake-apiserver/table.ts';

export type { Obj } from './fake-apiserver/resources.ts';
export { formatMicroTime, formatTime } from './fake-apiserver/store.ts';
export { serviceExternalIP, servicePorts } from './fake-apiserver/table.ts';

export interface RequestRecord {
  method: string;
  /** The URL path, without the query. */
  path: string;
  /** The query string, without '?'. */
  query: string;
  contentType: string | undefined;
  accept: string | undefined;
  userAgent: string | undefined;
  /** The request body (text; '' for none). */
  body: string;
  /** The HTTP status answered (for watches: 200 once the stream started). */
  status?: number;
}

export interface FakeApiServerOptions {
  /** Port to listen on; 0 (default) picks one, kept across stop()/start(). */
  port?: number;
  /** Address to listen on (default 127.0.0.1; a namespace's address when run inside one). */
  host?: string;
  /** Changes kept for watches resuming from a resourceVersion (default 1000). */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that allow them (default 1000 ms). */
  bookmarkIntervalMs?: number;
  /** Namespaces that exist from the start (default: default, kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
}

export interface Fault {
  method?: string;
  path?: string | RegExp;
  /** HTTP status to answer (a Status object in the real format is the body). */
  code: number;
  /** How many matching requests fail (default 1). */
  times?: number;
}

/** Direct access to the stored objects, bypassing HTTP (but emitting watch events). */
export interface ObjectAccess {
  /** resource: a plural ('services', 'nodes', 'leases', 'endpointslices', 'events', 'namespaces'). */
  get(resource: string, name: string, namespace?: string): Obj | undefined;
  list(resource: string, namespace?: string): Obj[];
  /** Create or replace as is: metadata.uid, creationTimestamp, resourceVersion are filled in; no defaults, validation or allocation. */
  put(obj: Obj): Obj;
  /** Remove at once, whatever the finalizers; emits DELETED. false when absent. */
  delete(resource: string, name: string, namespace?: string): boolean;
}

interface OpenWatch {
  rec: RequestRecord;
  res: http.ServerResponse;
  cancel: () => void;
}

const REASON: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/**
 * Reset a socket (TCP RST), as a dying API server or a broken network path does. A socket
 * whose FIN is still being sent cannot be reset: Node 24's resetAndDestroy() then fails with
 * EINVAL and never closes the handle, and the process spins forever at exit (uv_tcp_close_reset
 * refuses a stream with a pending shutdown). Those are destroyed instead.
 */
export function resetSocket(s: Socket): void {
  if (s.destroyed) return;
  if (s.writableEnded && !s.writableFinished) s.destroy();
  else s.resetAndDestroy();
}

function storageResource(plural: string): ResourceType {
  const r = RESOURCES.find((x) => x.storage === plural && x.group !== 'events.k8s.io') ?? RESOURCES.find((x) => `${x.group}/${x.plural}` === plural);
  if (!r) throw new Error(`FakeApiServer.objects: unknown resource "${plural}"`);
  return r;
}

export class FakeApiServer {
  /** Every request received, in order. */
  readonly requests: RequestRecord[] = [];
  readonly store: Store;
  readonly objects: ObjectAccess;
  private server: http.Server | undefined;
  private port: number;
  private readonly host: string;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<OpenWatch>();
  private readonly faults: (Fault & { left: number })[] = [];
  private readonly bookmarkIntervalMs: number;

  constructor(opts: FakeApiServerOptions = {}) {
    this.port = opts.port ?? 0;
    this.host = opts.host ?? '127.0.0.1';
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.store = new Store({ historyLimit: opts.historyLimit });
    const ns = findResource('', 'v1', 'namespaces')!;
    for (const name of opts.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.store.create(ns, undefined, { metadata: { name } });
    }
    const store = this.store;
    this.objects = {
      get: (resource, name, namespace) => {
        const r = storageResource(resource);
        const o = store.read(r.storage, r.namespaced ? (namespace ?? 'default') : undefined, name);
        return o ? toView(r, o) : undefined;
      },
      list: (resource, namespace) => {
        const r = storageResource(resource);
        return store.all(r.storage, namespace).map((o) => toView(r, o));
      },
      put: (obj) => store.put(obj),
      delete: (resource, name, namespace) => {
        const r = storageResource(resource);
        return store.remove(r.storage, r.namespaced ? (namespace ?? 'default') : undefined, name);
      },
    };
  }

  /** http://HOST:PORT (valid after start()). */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** The current global resourceVersion. */
  get resourceVersion(): string {
    return String(this.store.rv);
  }

  /** Listen (again, on the same port after a stop()). Resolves to the URL. */
  async start(): Promise<string> {
    if (this.server) return this.url;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.listen(this.port, this.host);
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.server = server;
    return this.url;
  }

  /** The API server goes away: the port closes and every connection (watches too) is reset. State stays. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watches]) w.cancel();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) resetSocket(s);
    this.sockets.clear();
    await closed;
  }

  /** Reset (TCP RST) the socket of every open watch; returns how many. */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      w.cancel();
      if (w.res.socket) resetSocket(w.res.socket);
    }
    return n;
  }

  /** Forget the history: watches resuming from any resourceVersion up to now get a 410 Expired ERROR event. */
  compact(): void {
    this.store.compact();
  }

  /** Number of watches currently open. */
  get openWatches(): number {
    return this.watches.size;
  }

  /** Make the next matching request(s) fail with `code` and a Status body. */
  failNext(f: Fault): void {
    this.faults.push({ ...f, left: f.times ?? 1 });
  }

  /** Resolves when an open watch's request matches pred (for tests that must not race a watch's start). */
  async waitForWatch(pred: (r: RequestRecord) => boolean = () => true, ms = 5000): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if ([...this.watches].some((w) => pred(w.rec))) return;
      await new Promise((res) => setTimeout(res, 10));
    }
    throw new Error(`no watch open within ${ms} ms`);
  }

  // --- HTTP ------------------------------------------------------------------------------

  private send(res: http.ServerResponse, rec: RequestRecord, code: number, body: unknown, contentType = 'application/json'): void {
    rec.status = code;
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search.slice(1),
      contentType: req.headers['content-type'],
      accept: req.headers.accept,
      userAgent: req.headers['user-agent'],
      body: '',
    };
    this.requests.push(rec);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rec.body = Buffer.concat(chunks).toString('utf8');
      try {
        const fault = this.faults.find((f) => f.left > 0 && (!f.method || f.method === rec.method) && (!f.path || (typeof f.path === 'string' ? f.path === rec.path : f.path.test(rec.path))));
        if (fault) {
          fault.left--;
          throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `injected fault ${fault.code}`, reason: REASON[fault.code] ?? '', code: fault.code });
        }
        this.route(req, res, url, rec, rec.body);
      } catch (err) {
        if (err instanceof ApiError) this.send(res, rec, err.code, err.status);
        else this.send(res, rec, 500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: String((err as Error)?.stack ?? err), reason: 'InternalError', code: 500 });
      }
    });
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, url: URL, rec: RequestRecord, body: string): void {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      if (p === '/version') return this.send(res, rec, 200, versionInfo());
      if (p === '/healthz' || p === '/readyz' || p === '/livez') {
        rec.status = 200;
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        return void res.end('ok');
      }
      if (p === '/api') return this.send(res, rec, 200, apiVersions(`127.0.0.1:${this.port}`));
      if (p === '/apis') return this.send(res, rec, 200, apiGroupList());
      if (p === '/api/v1') return this.send(res, rec, 200, apiResourceList('v1'));
      if (p === '/openapi/v3') return this.send(res, rec, 200, openapiRoot());
      if (p.startsWith('/openapi/v3/')) {
        const doc = openapiGroupVersion(p.slice('/openapi/v3/'.length));
        if (doc) return this.send(res, rec, 200, doc);
      }
      const g = p.match(/^\/apis\/([^/]+)$/);
      if (g && groups().includes(g[1]!)) return this.send(res, rec, 200, apiGroup(g[1]!));
      const gv = p.match(/^\/apis\/([^/]+\/[^/]+)$/);
      if (gv) {
        const list = apiResourceList(gv[1]!);
        if (list) return this.send(res, rec, 200, list);
      }
    }
    const segs = p.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs[1] === 'v1') {
      group = '';
      version = 'v1';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis' && segs.length >= 3) {
      group = segs[1]!;
      version = segs[2]!;
      rest = segs.slice(3);
    } else throw pathNotFound();

    let ns: string | undefined;
    let plural: string;
    let name: string | undefined;
    let sub: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && findResource(group, version, rest[2]!)?.namespaced) {
      ns = rest[1];
      [plural, name, sub] = rest.slice(2) as [string, string | undefined, string | undefined];
      if (rest.length > 5) throw pathNotFound();
    } else {
      [plural, name, sub] = rest as [string, string | undefined, string | undefined];
      if (rest.length > 3 || !plural) throw pathNotFound();
    }
    const r = findResource(group, version, plural);
    if (!r) throw pathNotFound();
    if (sub !== undefined && !(sub === 'status' && r.status)) throw pathNotFound();
    if (r.namespaced && name !== undefined && ns === undefined) throw pathNotFound();
    const q = url.searchParams;
    const parse = (): unknown => {
      try {
        return body === '' ? {} : JSON.parse(body);
      } catch (e) {
        throw badRequest(`error decoding request body: ${(e as Error).message}`);
      }
    };
    if (q.get('dryRun')) throw badRequest('dryRun is not supported by the fake API server');

    switch (method) {
      case 'GET':
        if (name === undefined) {
          if (q.get('watch') === 'true' || q.get('watch') === '1') return this.watch(req, res, rec, r, ns, q);
          return this.list(req, res, rec, r, ns, q);
        }
        return this.respond(req, res, rec, r, 200, this.store.get(r, ns, name), q);
      case 'POST':
        if (name !== undefined) throw methodNotAllowed();
        return this.respond(req, res, rec, r, 201, this.store.create(r, ns, parse()), q);
      case 'PUT':
        if (name === undefined) throw methodNotAllowed();
        return this.respond(req, res, rec, r, 200, this.store.update(r, ns, name, parse(), sub), q);
      case 'PATCH': {
        if (name === undefined) throw methodNotAllowed();
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const patch = parse();
        const cur = this.store.get(r, ns, name);
        let next: unknown;
        try {
          if (ct === 'application/merge-patch+json') next = mergePatch(cur, patch);
          else if (ct === 'application/strategic-merge-patch+json') next = strategicMergePatch(cur, patch);
          else if (ct === 'application/json-patch+json') next = jsonPatch(cur, patch);
          else throw unsupportedMediaType(ct);
        } catch (e) {
          if (e instanceof PatchError) {
            throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.code === 422 ? 'Invalid' : 'BadRequest', code: e.code });
          }
          throw e;
        }
        return this.respond(req, res, rec, r, 200, this.store.update(r, ns, name, next, sub), q);
      }
      case 'DELETE': {
        if (sub !== undefined) throw methodNotAllowed();
        const opts = parse() as Obj;
        if (name !== undefined) {
          const out = this.store.delete(r, ns, name, opts);
          return this.send(res, rec, 200, out);
        }
        // deletecollection
        const match = this.selectors(q);
        const items: Obj[] = [];
        for (const o of this.store.all(r.storage, ns)) if (match(o)) items.push(this.store.delete(r, o.metadata.namespace, o.metadata.name, opts));
        return this.send(res, rec, 200, this.listBody(r, items, {}));
      }
    }
    throw methodNotAllowed();
  }

  private selectors(q: URLSearchParams): (o: Obj) => boolean {
    const l = labelSelector(q.get('labelSelector'));
    const f = fieldSelector(q.get('fieldSelector'));
    return (o) => l(o) && f(o);
  }

  private listBody(r: ResourceType, items: Obj[], meta: Obj): Obj {
    return {
      kind: `${r.kind}List`,
      apiVersion: groupVersion(r),
      metadata: { resourceVersion: this.resourceVersion, ...meta },
      // List items carry no kind/apiVersion on the wire, as upstream's typed lists.
      items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
    };
  }

  /** One object, or a Table of one row when kubectl asks for it. */
  private respond(req: http.IncomingMessage, res: http.ServerResponse, rec: RequestRecord, r: ResourceType, code: number, obj: Obj, q: URLSearchParams): void {
    if (wantsTable(req.headers.accept)) {
      return this.send(res, rec, code, toTable(r, [obj], { resourceVersion: obj.metadata?.resourceVersion }, q.get('includeObject') ?? 'Metadata'), 'application/json;as=Table;v=v1;g=meta.k8s.io');
    }
    this.send(res, rec, code, obj);
  }

  private list(req: http.IncomingMessage, res: http.ServerResponse, rec: RequestRecord, r: ResourceType, ns: string | undefined, q: URLSearchParams): void {
    const match = this.selectors(q);
    let items = this.store.all(r.storage, ns).filter(match);
    const meta: Obj = {};
    const cont = q.get('continue');
    if (cont) {
      let after: string;
      try {
        after = String(JSON.parse(Buffer.from(cont, 'base64').toString('utf8')).start);
      } catch {
        throw badRequest('continue key is not valid: illegal base64 data');
      }
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after);
    }
    const limit = Number(q.get('limit') ?? 0);
    if (limit > 0 && items.length > limit) {
      const last = items[limit - 1]!;
      meta.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: this.store.rv, start: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString('base64');
      meta.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    const views = items.map((o) => toView(r, o));
    if (wantsTable(req.headers.accept)) {
      return this.send(res, rec, 200, toTable(r, views, { resourceVersion: this.resourceVersion, ...meta }, q.get('includeObject') ?? 'Metadata'), 'application/json;as=Table;v=v1;g=meta.k8s.io');
    }
    this.send(res, rec, 200, this.listBody(r, views, meta));
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, rec: RequestRecord, r: ResourceType, ns: string | undefined, q: URLSearchParams): void {
    const table = wantsTable(req.headers.accept);
    const includeObject = q.get('includeObject') ?? 'Metadata';
    const bookmarks = q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? 0);
    const match = this.selectors(q);
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': table ? 'application/json;as=Table;v=v1;g=meta.k8s.io' : 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    let first = true;
    const line = (type: string, object: Obj) => {
      if (res.writableEnded || res.destroyed) return;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const send = (type: EventType, obj: Obj) => {
      if (!table) return line(type, obj);
      const t = toTable(r, [obj], { resourceVersion: obj.metadata?.resourceVersion }, includeObject);
      if (!first) t.columnDefinitions = [];
      first = false;
      line(type, t);
    };
    let timers: NodeJS.Timeout[] = [];
    let unsubscribe: () => void = () => {};
    const w: OpenWatch = {
      rec,
      res,
      cancel: () => {
        unsubscribe();
        for (const t of timers) clearTimeout(t);
        timers = [];
        this.watches.delete(w);
      },
    };
    // sendInitialEvents=true (client-go's WatchList): the current state, then a BOOKMARK
    // annotated k8s.io/initial-events-end, then changes.
    const initial = q.get('sendInitialEvents') === 'true';
    try {
      unsubscribe = this.store.watch(r, ns, initial ? '' : (q.get('resourceVersion') ?? ''), match, send);
      if (initial) {
        line('BOOKMARK', { kind: r.kind, apiVersion: groupVersion(r), metadata: { resourceVersion: this.resourceVersion, annotations: { 'k8s.io/initial-events-end': 'true' } } });
      }
    } catch (err) {
      // As the watch cache does: the stream starts, carries one ERROR event with the Status, and ends.
      if (!(err instanceof ApiError)) throw err;
      line('ERROR', err.status);
      res.end();
      return;
    }
    this.watches.add(w);
    res.on('close', () => w.cancel());
    if (bookmarks) {
      const tick = setInterval(() => {
        line('BOOKMARK', { kind: r.kind, apiVersion: groupVersion(r), metadata: { resourceVersion: this.resourceVersion } });
      }, this.bookmarkIntervalMs);
      timers.push(tick);
    }
    if (timeoutSeconds > 0) {
      timers.push(
        setTimeout(() => {
          w.cancel();
          res.end();
        }, timeoutSeconds * 1000),
      );
    }
  }
}
