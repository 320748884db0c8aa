// The fake API server's storage and registry: one global resourceVersion counter (as etcd's
// revision), a bounded history of changes for watches, and the per-kind behaviour of the real
// registry (status subresource, finalizers, generation, Service allocation, Event and Lease
// time formats, namespaces that must exist).

import { randomUUID } from 'node:crypto';
import { groupVersion, RESOURCES, resourceFor, type Obj, type ResourceType } from './resources.ts';
import { ServiceAllocator, validateServiceStatus } from './services.ts';
import {
  ApiError,
  alreadyExists,
  badRequest,
  cannotBeHandled,
  conflict,
  expired,
  invalid,
  invalidCause,
  namespaceNotFound,
  notFound,
  notSupportedCause,
  requiredCause,
  success,
  type Cause,
} from './status.ts';
import type { Predicate } from './selectors.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  type: EventType;
  rv: number;
  storage: string;
  /** The object after the change (for DELETED: the last state, with the deletion's resourceVersion). */
  object: Obj;
  /** The object before the change (MODIFIED only). */
  prev?: Obj;
}

export interface Subscription {
  storage: string;
  deliver(e: StoredEvent): void;
}

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** metav1.Time as the server writes it: RFC 3339, whole seconds, UTC. */
export function formatTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** metav1.MicroTime as the server writes it: 2006-01-02T15:04:05.000000Z. */
export function formatMicroTime(d: Date): string {
  return d.toISOString().replace(/Z$/, '000Z');
}

function getPath(o: Obj, path: string): unknown {
  let cur: any = o;
  for (const seg of path.split('.')) cur = cur?.[seg];
  return cur;
}

function setPath(o: Obj, path: string, v: unknown): void {
  const segs = path.split('.');
  let cur: any = o;
  for (const seg of segs.slice(0, -1)) {
    if (cur[seg] === undefined || cur[seg] === null) return;
    cur = cur[seg];
  }
  cur[segs[segs.length - 1]!] = v;
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Obj = {};
    for (const k of Object.keys(v).sort()) if ((v as Obj)[k] !== undefined) out[k] = sortKeys((v as Obj)[k]);
    return out;
  }
  return v;
}

const GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

const EVENT_FIELDS: [string, string][] = [
  // [core v1 field, events.k8s.io/v1 field]
  ['involvedObject', 'regarding'],
  ['message', 'note'],
  ['reportingComponent', 'reportingController'],
  ['source', 'deprecatedSource'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
];

function coreEventDefaults(e: Obj): Obj {
  return {
    ...e,
    source: e.source ?? {},
    firstTimestamp: e.firstTimestamp ?? null,
    lastTimestamp: e.lastTimestamp ?? null,
    eventTime: e.eventTime ?? null,
    reportingComponent: e.reportingComponent ?? '',
    reportingInstance: e.reportingInstance ?? '',
  };
}

/** An object as the API view r shows it (events.k8s.io/v1 Events are stored as core v1 Events). */
export function toView(r: ResourceType, stored: Obj): Obj {
  const o = structuredClone(stored);
  if (r.group === 'events.k8s.io') {
    const out: Obj = { kind: 'Event', apiVersion: 'events.k8s.io/v1', metadata: o.metadata };
    for (const [k, v] of Object.entries(o)) {
      if (k === 'kind' || k === 'apiVersion' || k === 'metadata') continue;
      const map = EVENT_FIELDS.find(([core]) => core === k);
      const key = map ? map[1] : k;
      if (v === null || v === '' || (key === 'deprecatedSource' && Object.keys(v as Obj).length === 0)) continue;
      out[key] = v;
    }
    return out;
  }
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return { apiVersion: groupVersion(r), kind: r.kind, ...rest };
}

function fromView(r: ResourceType, body: Obj): Obj {
  if (r.group !== 'events.k8s.io') return body;
  const out: Obj = { kind: 'Event', apiVersion: 'v1', metadata: body.metadata };
  for (const [k, v] of Object.entries(body)) {
    if (k === 'kind' || k === 'apiVersion' || k === 'metadata') continue;
    const map = EVENT_FIELDS.find(([, ev]) => ev === k);
    out[map ? map[0] : k] = v;
  }
  return out;
}

export interface StoreOptions {
  /** Events kept for watches that resume from a resourceVersion (default 1000). */
  historyLimit?: number;
  now?: () => Date;
}

export class Store {
  /** The global resourceVersion: the last revision written. */
  rv = 0;
  /** A watch can resume from any resourceVersion >= floor; older ones get 410 Expired. */
  floor = 0;
  readonly historyLimit: number;
  readonly services = new ServiceAllocator();
  readonly subscriptions = new Set<Subscription>();
  private readonly data = new Map<string, Map<string, Obj>>();
  private history: StoredEvent[] = [];
  private readonly now: () => Date;

  constructor(opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 1000;
    this.now = opts.now ?? (() => new Date());
  }

  // --- storage ---------------------------------------------------------------------------

  private bucket(storage: string): Map<string, Obj> {
    let b = this.data.get(storage);
    if (!b) this.data.set(storage, (b = new Map()));
    return b;
  }

  private static key(ns: string | undefined, name: string): string {
    return `${ns ?? ''}/${name}`;
  }

  /** The stored object (not a copy). */
  read(storage: string, ns: string | undefined, name: string): Obj | undefined {
    return this.data.get(storage)?.get(Store.key(ns, name));
  }

  /** Stored objects of a kind, sorted by namespace and name (not copies). */
  all(storage: string, ns?: string): Obj[] {
    const out: Obj[] = [];
    for (const [k, o] of [...this.bucket(storage)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (ns === undefined || k.startsWith(`${ns}/`)) out.push(o);
    }
    return out;
  }

  private emit(e: StoredEvent): void {
    this.history.push(e);
    while (this.history.length > this.historyLimit) this.floor = this.history.shift()!.rv;
    for (const s of [...this.subscriptions]) if (s.storage === e.storage) s.deliver(e);
  }

  /** Write obj (stored form) with a new resourceVersion and emit ADDED or MODIFIED. */
  private write(storage: string, obj: Obj, prev: Obj | undefined): Obj {
    obj.metadata.resourceVersion = String(++this.rv);
    this.bucket(storage).set(Store.key(obj.metadata.namespace, obj.metadata.name), obj);
    this.emit({ type: prev ? 'MODIFIED' : 'ADDED', rv: this.rv, storage, object: structuredClone(obj), ...(prev ? { prev: structuredClone(prev) } : {}) });
    return obj;
  }

  private erase(storage: string, obj: Obj): Obj {
    this.bucket(storage).delete(Store.key(obj.metadata.namespace, obj.metadata.name));
    const gone = structuredClone(obj);
    gone.metadata.resourceVersion = String(++this.rv);
    if (storage === 'services') this.services.release(obj);
    this.emit({ type: 'DELETED', rv: this.rv, storage, object: structuredClone(gone) });
    return gone;
  }

  /** Forget the history: watches from any resourceVersion before now get 410 Expired. */
  compact(): void {
    this.history = [];
    this.floor = this.rv;
  }

  // --- watch -----------------------------------------------------------------------------

  /**
   * Start a watch on r: initial ADDED events for the current state when rv is '' or '0',
   * else the history after rv; then every change. Throws 410 Expired for an rv older than
   * the history window. `send` receives view objects; selector transitions become
   * ADDED/DELETED as in the real watch cache.
   */
  watch(r: ResourceType, ns: string | undefined, rv: string, match: Predicate, send: (type: EventType, obj: Obj) => void): () => void {
    const inNs = (o: Obj) => ns === undefined || o.metadata?.namespace === ns;
    const deliver = (e: StoredEvent) => {
      const now = inNs(e.object) && match(e.object);
      const before = e.prev ? inNs(e.prev) && match(e.prev) : false;
      if (e.type === 'MODIFIED') {
        if (now && before) send('MODIFIED', toView(r, e.object));
        else if (now) send('ADDED', toView(r, e.object));
        else if (before) {
          const last = structuredClone(e.prev!);
          last.metadata.resourceVersion = e.object.metadata.resourceVersion;
          send('DELETED', toView(r, last));
        }
      } else if (now) send(e.type, toView(r, e.object));
    };
    if (rv === '' || rv === '0') {
      for (const o of this.all(r.storage, ns)) if (match(o)) send('ADDED', toView(r, o));
    } else {
      const from = Number(rv);
      if (!Number.isSafeInteger(from) || from < 0) throw badRequest(`resourceVersion: Invalid value: "${rv}": must be a non-negative integer`);
      if (from < this.floor) throw expired(from, this.floor);
      for (const e of this.history) if (e.rv > from && e.storage === r.storage) deliver(e);
    }
    const sub: Subscription = { storage: r.storage, deliver };
    this.subscriptions.add(sub);
    return () => this.subscriptions.delete(sub);
  }

  // --- the registry: what the API verbs do -----------------------------------------------

  get(r: ResourceType, ns: string | undefined, name: string): Obj {
    const o = this.read(r.storage, ns, name);
    if (!o) throw notFound(r, name);
    return toView(r, o);
  }

  private checkTimes(r: ResourceType, body: Obj): void {
    for (const f of r.microTimes ?? []) {
      const v = getPath(body, f);
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string' || !MICRO_TIME.test(v)) {
        const frac = typeof v === 'string' ? (v.match(/\.\d*(Z|[+-].*)$/)?.[0] ?? v.slice(19)) : String(v);
        throw cannotBeHandled(r, `parsing time ${JSON.stringify(String(v))} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(frac)} as ".000000"`);
      }
    }
    for (const f of r.times ?? []) {
      const v = getPath(body, f);
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string' || !TIME.test(v)) throw cannotBeHandled(r, `parsing time ${JSON.stringify(String(v))} as "2006-01-02T15:04:05Z07:00": cannot parse`);
      setPath(body, f, formatTime(new Date(v)));
    }
  }

  private decode(r: ResourceType, body: unknown): Obj {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw cannotBeHandled(r, 'json: cannot unmarshal into Go value of type ' + r.kind);
    const o = structuredClone(body) as Obj;
    if (o.apiVersion !== undefined && o.apiVersion !== groupVersion(r)) {
      throw badRequest(`the API version in the data (${o.apiVersion}) does not match the expected API version (${groupVersion(r)})`);
    }
    if (o.kind !== undefined && o.kind !== r.kind) throw badRequest(`the kind in the data (${o.kind}) does not match the expected kind (${r.kind})`);
    if (o.metadata !== undefined && (typeof o.metadata !== 'object' || o.metadata === null)) throw cannotBeHandled(r, 'metadata must be an object');
    o.metadata ??= {};
    this.checkTimes(r, o);
    // Stored with the kind's own apiVersion and kind (a client may leave them out).
    const { apiVersion: _a, kind: _k, ...rest } = o;
    return { apiVersion: groupVersion(r), kind: r.kind, ...rest };
  }

  private validate(r: ResourceType, o: Obj, old: Obj | undefined): void {
    const name = o.metadata.name;
    const causes: Cause[] = [];
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      causes.push(invalidCause('metadata.name', name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
    }
    if (r.kind === 'Service' && !/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
      causes.push(invalidCause('metadata.name', name, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"));
    }
    if (r.storage === 'events') causes.push(...eventCauses(r, o, old));
    if (r.kind === 'Lease' && o.spec?.leaseDurationSeconds !== undefined && !(Number.isInteger(o.spec.leaseDurationSeconds) && o.spec.leaseDurationSeconds > 0)) {
      causes.push(invalidCause('spec.leaseDurationSeconds', o.spec.leaseDurationSeconds, 'must be greater than 0'));
    }
    if (r.kind === 'EndpointSlice' && !['IPv4', 'IPv6', 'FQDN'].includes(o.addressType)) {
      causes.push(notSupportedCause('addressType', o.addressType ?? '', ['FQDN', 'IPv4', 'IPv6']));
    }
    if (causes.length > 0) throw invalid(r, name, causes);
  }

  private checkNamespace(r: ResourceType, ns: string | undefined, body: Obj): string | undefined {
    if (!r.namespaced) {
      delete body.metadata.namespace;
      return undefined;
    }
    if (body.metadata.namespace !== undefined && body.metadata.namespace !== '' && body.metadata.namespace !== ns) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    body.metadata.namespace = ns;
    return ns;
  }

  create(r: ResourceType, ns: string | undefined, body: unknown): Obj {
    const o = fromView(r, this.decode(r, body));
    ns = this.checkNamespace(r, ns, o);
    if (ns !== undefined && !this.read('namespaces', undefined, ns)) throw namespaceNotFound(ns);
    const m = o.metadata;
    if (!m.name && m.generateName) {
      do {
        let s = '';
        for (let i = 0; i < 5; i++) s += GENERATE_CHARS[Math.floor(Math.random() * GENERATE_CHARS.length)];
        m.name = m.generateName + s;
      } while (this.read(r.storage, ns, m.name));
    }
    if (!m.name) throw invalid(r, '', [requiredCause('metadata.name', 'name or generateName is required')]);
    if (m.resourceVersion) throw new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'resourceVersion should not be set on objects to be created', code: 500 });
    if (this.read(r.storage, ns, m.name)) throw alreadyExists(r, m.name);
    this.validate(r, o, undefined);
    m.uid = randomUUID();
    m.creationTimestamp = formatTime(this.now());
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.managedFields;
    if (r.generation) m.generation = 1;
    else delete m.generation;
    switch (r.storage) {
      case 'services':
        o.status = { loadBalancer: {} };
        this.services.prepare(r, o, undefined);
        break;
      case 'namespaces':
        o.spec = { finalizers: ['kubernetes'] };
        o.status = { phase: 'Active' };
        m.labels = { ...m.labels, 'kubernetes.io/metadata.name': m.name };
        break;
      case 'events':
        Object.assign(o, coreEventDefaults(o));
        break;
    }
    this.write(r.storage, o, undefined);
    return toView(r, o);
  }

  /**
   * PUT (and the last step of PATCH): subresource 'status' takes only the status (spec
   * stays), the main resource everything but the status. A stale metadata.resourceVersion
   * gets 409 Conflict; an update that changes nothing writes nothing.
   */
  update(r: ResourceType, ns: string | undefined, name: string, body: unknown, sub?: string): Obj {
    const o = fromView(r, this.decode(r, body));
    ns = this.checkNamespace(r, ns, o);
    if (o.metadata.name !== undefined && o.metadata.name !== name) throw badRequest(`the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`);
    o.metadata.name = name;
    const cur = this.read(r.storage, ns, name);
    if (!cur) {
      // Events allow create on update (AllowCreateOnUpdate), nothing else served here does.
      if (r.storage === 'events' && !sub) return this.create(r, ns, toView(r, o));
      throw notFound(r, name);
    }
    const rv = o.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== cur.metadata.resourceVersion) throw conflict(r, name);
    if (o.metadata.uid !== undefined && o.metadata.uid !== '' && o.metadata.uid !== cur.metadata.uid) {
      throw conflict(r, name, `Precondition failed: UID in precondition: ${o.metadata.uid}, UID in object meta: ${cur.metadata.uid}`);
    }
    // What the client may not change: identity, timestamps, the deletion mark.
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'managedFields']) {
      if (cur.metadata[k] === undefined) delete o.metadata[k];
      else o.metadata[k] = cur.metadata[k];
    }
    if (sub === 'status') {
      if (!r.status) throw notFound(r, name);
      if ('spec' in cur) o.spec = structuredClone(cur.spec);
      else delete o.spec;
    } else if (r.status) {
      if ('status' in cur) o.status = structuredClone(cur.status);
      else delete o.status;
    }
    if (r.storage === 'namespaces' && sub !== 'status') o.spec = structuredClone(cur.spec);
    if (r.storage === 'events') Object.assign(o, coreEventDefaults(o));
    this.validate(r, o, cur);
    if (r.storage === 'services') {
      if (sub !== 'status') this.services.prepare(r, o, cur);
      else validateServiceStatus(r, o);
    }
    if (r.generation && !equal(o.spec, cur.spec)) o.metadata.generation = (cur.metadata.generation ?? 0) + 1;
    o.metadata.resourceVersion = cur.metadata.resourceVersion;
    if (equal(o, cur)) return toView(r, cur);
    this.write(r.storage, o, cur);
    if (o.metadata.deletionTimestamp && (o.metadata.finalizers ?? []).length === 0) {
      return toView(r, this.erase(r.storage, o));
    }
    return toView(r, o);
  }

  /**
   * DELETE: with finalizers, mark deletionTimestamp and keep the object (MODIFIED); without,
   * remove it at once (DELETED). Returns [http status, body].
   */
  delete(r: ResourceType, ns: string | undefined, name: string, opts: Obj = {}): Obj {
    const cur = this.read(r.storage, ns, name);
    if (!cur) throw notFound(r, name);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== cur.metadata.uid) throw conflict(r, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(r, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.metadata.resourceVersion}`);
    }
    if (r.storage === 'namespaces') {
      // Simplified namespace lifecycle: its objects are deleted (finalizers respected), then it goes.
      for (const res of RESOURCES) {
        if (!res.namespaced || res.group === 'events.k8s.io') continue;
        for (const o of this.all(res.storage, name)) {
          try {
            this.delete(res, name, o.metadata.name);
          } catch {
            // already gone
          }
        }
      }
    }
    if ((cur.metadata.finalizers ?? []).length > 0) {
      if (cur.metadata.deletionTimestamp) return toView(r, cur);
      const next = structuredClone(cur);
      next.metadata.deletionTimestamp = formatTime(this.now());
      next.metadata.deletionGracePeriodSeconds = 0;
      if (next.metadata.generation) next.metadata.generation++;
      this.write(r.storage, next, cur);
      return toView(r, next);
    }
    const gone = this.erase(r.storage, cur);
    return r.storage === 'services' || r.storage === 'namespaces' ? toView(r, gone) : success(r, name, gone.metadata.uid);
  }

  // --- direct access for tests -----------------------------------------------------------

  /** Write an object as is (no defaults, validation or allocation), creating or replacing it. */
  put(obj: Obj): Obj {
    const r = resourceFor(String(obj.apiVersion ?? ''), String(obj.kind ?? ''));
    if (!r) throw new Error(`FakeApiServer.objects.put: no resource serves ${obj.apiVersion} ${obj.kind}`);
    const o = fromView(r, structuredClone(obj));
    o.metadata ??= {};
    if (!o.metadata.name) throw new Error('FakeApiServer.objects.put: metadata.name is required');
    if (r.namespaced) o.metadata.namespace ??= 'default';
    else delete o.metadata.namespace;
    const cur = this.read(r.storage, o.metadata.namespace, o.metadata.name);
    o.metadata.uid ??= cur?.metadata.uid ?? randomUUID();
    o.metadata.creationTimestamp ??= cur?.metadata.creationTimestamp ?? formatTime(this.now());
    if (r.storage === 'services') {
      if (cur) this.services.release(cur);
      this.services.adopt(o);
    }
    this.write(r.storage, o, cur);
    return toView(r, o);
  }

  /** Remove an object at once, whatever its finalizers; false when absent. */
  remove(storage: string, ns: string | undefined, name: string): boolean {
    const cur = this.read(storage, ns, name);
    if (!cur) return false;
    this.erase(storage, cur);
    return true;
  }
}

function eventCauses(r: ResourceType, e: Obj, old: Obj | undefined): Cause[] {
  // pkg/apis/core/validation/events.go, on the core (storage) form.
  const causes: Cause[] = [];
  const ns = e.metadata.namespace ?? '';
  const io = e.involvedObject ?? {};
  const strict = r.group === 'events.k8s.io';
  const rc = 'reportingController'; // the internal field's name, in both API versions' messages
  if (!e.eventTime) {
    if (!io.namespace) {
      if (ns !== '' && ns !== 'default') causes.push(invalidCause('involvedObject.namespace', io.namespace ?? '', 'does not match event.namespace'));
    } else if (ns !== io.namespace) causes.push(invalidCause('involvedObject.namespace', io.namespace, 'does not match event.namespace'));
  } else {
    if (!io.namespace && ns !== 'default' && ns !== 'kube-system') causes.push(invalidCause('involvedObject.namespace', io.namespace ?? '', 'does not match event.namespace'));
    if (!e.reportingComponent) causes.push(requiredCause(rc));
    if (!e.reportingInstance) causes.push(requiredCause('reportingInstance'));
    if (!e.action) causes.push(requiredCause('action'));
    if (!e.reason) causes.push(requiredCause('reason'));
    if (String(e.message ?? '').length > 1024) causes.push(invalidCause('message', '', 'can have at most 1024 characters'));
  }
  if (strict && !old) {
    if (!e.eventTime) causes.push(requiredCause('eventTime'));
    if (e.type !== 'Normal' && e.type !== 'Warning') causes.push(invalidCause('type', '', `has invalid value: ${e.type ?? ''}`));
    if (e.firstTimestamp) causes.push(invalidCause('firstTimestamp', '', 'needs to be unset'));
    if (e.lastTimestamp) causes.push(invalidCause('lastTimestamp', '', 'needs to be unset'));
    if (e.count) causes.push(invalidCause('count', '', 'needs to be unset'));
    if (e.source?.component || e.source?.host) causes.push(invalidCause('source', '', 'needs to be unset'));
  }
  return causes;
}
