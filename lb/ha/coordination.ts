// The coordination engine behind HA: a small interface (watch, acquire, renew, release) and
// its implementation on coordination.k8s.io/v1 Leases with @kubernetes/client-node. Another
// engine (etcd, say) implements the same four calls; lb/ha/manager.ts and the data plane do
// not change.
//
// Fencing: every write is a compare-and-swap on the Lease's resourceVersion (update) or a
// create that fails when the Lease exists; a lost race is a LeaseConflict, never a silent
// overwrite of another appliance's claim.

import * as k8s from '@kubernetes/client-node';
import { apiStatus, isAbort } from '../k8s/client.ts';

/** A Lease as the engine holds it. */
export interface Lease {
  name: string;
  /** '' when free. */
  holder: string;
  /** As written, for change detection only. */
  renewTime: string;
  /** When the holder took it, as written ('' when never held). */
  acquireTime: string;
  transitions: number;
  /** The compare-and-swap token (resourceVersion). */
  version: string;
  annotations: Record<string, string>;
}

/** Someone else changed the Lease first (409), or it exists already on create. */
export class LeaseConflict extends Error {
  constructor(name: string) {
    super(`Lease ${name} changed under us`);
    this.name = 'LeaseConflict';
  }
}

export interface LeaseWatchEvents {
  /** The full current set after every change. */
  changed(leases: readonly Lease[]): void;
  /** true after each (re)list: the view is current; false when the watch broke. */
  synced(ok: boolean): void;
}

export interface Coordination {
  /** Starts watching every Lease of the namespace; keeps retrying on its own. */
  start(events: LeaseWatchEvents): void;
  stop(): Promise<void>;
  /** Create (prev undefined) or take over `prev` for `holder`. */
  acquire(name: string, holder: string, durationMs: number, prev: Lease | undefined, annotations?: Record<string, string>): Promise<Lease>;
  /** Renew a Lease we hold (its renewTime now; annotations replaced when given). */
  renew(lease: Lease, durationMs: number, annotations?: Record<string, string>): Promise<Lease>;
  /** Give a Lease up: holderIdentity cleared, so a watching peer may take it at once. */
  release(lease: Lease): Promise<Lease>;
}

type KLease = k8s.V1Lease;

function timeText(t: unknown): string {
  return t instanceof Date ? t.toISOString() : String(t ?? '');
}

function toLease(o: KLease): Lease {
  return {
    name: o.metadata?.name ?? '',
    holder: o.spec?.holderIdentity ?? '',
    renewTime: timeText(o.spec?.renewTime),
    acquireTime: timeText(o.spec?.acquireTime),
    transitions: o.spec?.leaseTransitions ?? 0,
    version: o.metadata?.resourceVersion ?? '',
    annotations: { ...(o.metadata?.annotations ?? {}) },
  };
}

/** leaseDurationSeconds holds whole seconds: the setting rounded up (SPEC). */
export function durationSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export interface KubeLeasesOptions {
  kc: k8s.KubeConfig;
  namespace: string;
  onError?: (what: string, err: unknown) => void;
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** Leases in one namespace through the API server. */
export class KubeLeases implements Coordination {
  private readonly api: k8s.CoordinationV1Api;
  private readonly o: KubeLeasesOptions;
  private readonly ns: string;
  private informer: (k8s.Informer<KLease> & k8s.ObjectCache<KLease>) | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private delay: number;

  constructor(opts: KubeLeasesOptions) {
    this.o = opts;
    this.ns = opts.namespace;
    this.api = opts.kc.makeApiClient(k8s.CoordinationV1Api);
    this.delay = opts.backoffMs ?? 200;
  }

  start(events: LeaseWatchEvents): void {
    const inf = k8s.makeInformer(this.o.kc, `/apis/coordination.k8s.io/v1/namespaces/${this.ns}/leases`, () => this.api.listNamespacedLease({ namespace: this.ns }));
    this.informer = inf;
    const changed = () => events.changed(inf.list().map(toLease));
    inf.on('add', changed);
    inf.on('update', changed);
    inf.on('delete', changed);
    inf.on('error', (err) => {
      if (this.stopped || isAbort(err)) return;
      events.synced(false);
      this.o.onError?.('lease watch ended; restarting', err);
      this.restart(events, changed);
    });
    this.restart(events, changed, 0);
  }

  private restart(events: LeaseWatchEvents, changed: () => void, after = this.delay): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.informer!.start().then(
        () => {
          this.delay = this.o.backoffMs ?? 200;
          changed();
          events.synced(true);
        },
        (err: unknown) => {
          if (this.stopped) return;
          events.synced(false);
          this.o.onError?.('cannot list Leases; retrying', err);
          this.delay = Math.min(this.delay * 2, this.o.maxBackoffMs ?? 5000);
          this.restart(events, changed);
        },
      );
    }, after);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.informer?.stop().catch(() => {});
  }

  private async write(name: string, f: () => Promise<KLease>): Promise<Lease> {
    try {
      return toLease(await f());
    } catch (err) {
      if (apiStatus(err) === 409) throw new LeaseConflict(name);
      throw err;
    }
  }

  acquire(name: string, holder: string, durationMs: number, prev: Lease | undefined, annotations?: Record<string, string>): Promise<Lease> {
    const now = new k8s.V1MicroTime();
    const spec: k8s.V1LeaseSpec = { holderIdentity: holder, leaseDurationSeconds: durationSeconds(durationMs), acquireTime: now, renewTime: now, leaseTransitions: prev ? prev.transitions + (prev.holder !== holder ? 1 : 0) : 0 };
    if (!prev) {
      return this.write(name, () => this.api.createNamespacedLease({ namespace: this.ns, body: { metadata: { name, ...(annotations ? { annotations } : {}) }, spec } }));
    }
    return this.write(name, () =>
      this.api.replaceNamespacedLease({
        namespace: this.ns,
        name,
        body: { metadata: { name, resourceVersion: prev.version, annotations: annotations ?? prev.annotations }, spec },
      }),
    );
  }

  renew(lease: Lease, durationMs: number, annotations?: Record<string, string>): Promise<Lease> {
    return this.write(lease.name, () =>
      this.api.replaceNamespacedLease({
        namespace: this.ns,
        name: lease.name,
        body: {
          metadata: { name: lease.name, resourceVersion: lease.version, annotations: annotations ?? lease.annotations },
          spec: {
            holderIdentity: lease.holder,
            leaseDurationSeconds: durationSeconds(durationMs),
            ...(lease.acquireTime ? { acquireTime: new k8s.V1MicroTime(lease.acquireTime) } : {}),
            renewTime: new k8s.V1MicroTime(),
            leaseTransitions: lease.transitions,
          },
        },
      }),
    );
  }

  release(lease: Lease): Promise<Lease> {
    const now = new k8s.V1MicroTime();
    return this.write(lease.name, () =>
      this.api.replaceNamespacedLease({
        namespace: this.ns,
        name: lease.name,
        body: {
          metadata: { name: lease.name, resourceVersion: lease.version, annotations: lease.annotations },
          spec: { holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, leaseTransitions: lease.transitions },
        },
      }),
    );
  }
}
