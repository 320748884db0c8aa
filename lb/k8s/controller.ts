// The Kubernetes controller: watches Services, Nodes and EndpointSlices, gives Edgeport's
// LoadBalancer Services an address from the shared allocator, writes their status, keeps the
// finalizer and the Events, and tells the app which virtual services to run
// (SPEC "Kubernetes conventions"). The API is behind KubeApi (lb/k8s/client.ts).
//
// One reconcile runs at a time over the whole cached state (debounced), in this order:
//   1. release the addresses of Services deleted, gone or no longer ours;
//   2. for each of our Services: the finalizer first, then keep the address in status (every
//      status address of every Service is assigned before anything new is allocated: restart
//      stability), else the requested address (must lie in a pool), else allocate;
//   3. status patches where the ingress differs;
//   4. onChange(desired) when the virtual services changed, awaited (listeners closed);
//   5. then IPReleased and finalizer removal for what step 1 released.
// A failed API call makes the reconcile run again after a backoff.

import type { Config, PortSpec } from '../core/types.ts';
import type { Logger } from '../core/log.ts';
import type { Allocator, ServicePort } from '../ipam/allocator.ts';
import { apiStatus, isAbort, type KubeApi, type ObjectWatch } from './client.ts';
import {
  eligibleNodes,
  FINALIZER,
  isOurs,
  localEndpoints,
  requestedIPs,
  serviceKey,
  servicePorts,
  serviceSettings,
  type KEndpointSlice,
  type KService,
} from './convert.ts';

/** A virtual service from Kubernetes: name 'k8s/NAMESPACE/NAME'. */
export interface K8sVirtualService {
  name: string;
  vip: string;
  ports: PortSpec[];
}

export interface KubeControllerOptions {
  api: KubeApi;
  cfg: Pick<Config, 'kubernetes' | 'defaults'>;
  /** Shared with the static services: keys 'k8s/NS/NAME' are this controller's. */
  allocator: Allocator;
  log: Logger;
  /** The virtual services to run; awaited before finalizers are removed. */
  onChange: (services: K8sVirtualService[]) => void | Promise<void>;
  debounceMs?: number;
  /** First retry delay of watches and failed reconciles (doubles up to maxBackoffMs). */
  backoffMs?: number;
  maxBackoffMs?: number;
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function allocKey(svc: KService): string {
  return `k8s/${serviceKey(svc)}`;
}

function nsOf(svc: KService): string {
  return svc.metadata.namespace ?? 'default';
}

function statusIPs(svc: KService): string[] {
  return (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).filter((ip): ip is string => !!ip);
}

function allocPorts(svc: KService): ServicePort[] {
  const out: ServicePort[] = [];
  for (const p of svc.spec?.ports ?? []) {
    const protocol = (p.protocol ?? 'TCP').toUpperCase();
    if (protocol === 'TCP' || protocol === 'UDP') out.push({ port: p.port, protocol });
  }
  return out;
}

function ingressDiffers(svc: KService, ips: readonly string[]): boolean {
  const cur = (svc.status?.loadBalancer?.ingress ?? []) as { ip?: string; ipMode?: string; hostname?: string }[];
  if (cur.length !== ips.length) return true;
  return cur.some((c, i) => c.ip !== ips[i] || c.ipMode !== 'Proxy' || c.hostname !== undefined);
}

class Watcher {
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private starting = false;
  private failedWhileStarting = false;
  readonly name: string;
  private readonly w: ObjectWatch<unknown>;
  private readonly ctl: { log: Logger; backoffMs: number; maxBackoffMs: number; changed: () => void };
  constructor(name: string, w: ObjectWatch<unknown>, ctl: { log: Logger; backoffMs: number; maxBackoffMs: number; changed: () => void }) {
    this.name = name;
    this.w = w;
    this.ctl = ctl;
    this.delay = ctl.backoffMs;
    w.onChange(() => ctl.changed());
    w.onError((err) => {
      if (this.stopped || isAbort(err)) return;
      ctl.log.warn('watch ended; restarting', { resource: name, err: String((err as Error)?.message ?? err), retryMs: this.delay });
      // An error while a start() is in flight (connection refused) counts once that settles.
      if (this.starting) this.failedWhileStarting = true;
      else this.schedule();
    });
  }

  /** Resolves once the first start succeeded (retrying with backoff until then). */
  async start(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        await this.w.start();
        this.delay = this.ctl.backoffMs;
        return;
      } catch (err) {
        if (this.stopped) return;
        this.ctl.log.warn('cannot list; retrying', { resource: this.name, err: String((err as Error)?.message ?? err), retryMs: this.delay });
        await new Promise((r) => setTimeout(r, this.delay));
        this.delay = Math.min(this.delay * 2, this.ctl.maxBackoffMs);
      }
    }
  }

  private schedule(): void {
    if (this.timer || this.starting || this.stopped) return;
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, this.ctl.maxBackoffMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.starting = true;
      this.failedWhileStarting = false;
      this.w.start().then(
        () => {
          this.starting = false;
          if (this.failedWhileStarting) return this.schedule();
          this.delay = this.ctl.backoffMs;
          this.ctl.changed();
        },
        (err: unknown) => {
          this.starting = false;
          if (this.stopped) return;
          this.ctl.log.warn('cannot restart watch; retrying', { resource: this.name, err: String((err as Error)?.message ?? err), retryMs: this.delay });
          this.schedule();
        },
      );
    }, d);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.w.stop().catch(() => {});
  }
}

export class KubeController {
  private readonly o: Required<Omit<KubeControllerOptions, 'cfg' | 'allocator' | 'api' | 'log' | 'onChange'>> & KubeControllerOptions;
  private readonly watchers: Watcher[];
  /** Allocator key -> address, for the Services this controller gave one. */
  private readonly held = new Map<string, string>();
  /** Allocator key -> last AllocationFailed message (one Event per distinct failure). */
  private readonly failures = new Map<string, string>();
  /** Status patches sent, with the resourceVersion of the object seen then (stale-cache guard). */
  private readonly written = new Map<string, { ip: string; rv: string }>();
  private lastDesired = '';
  private desired: K8sVirtualService[] = [];
  private started = false;
  private stopped = false;
  private debounce: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private running: Promise<void> | undefined;
  private again = false;
  /** Reconciles completed (for tests and the status page). */
  generation = 0;

  constructor(opts: KubeControllerOptions) {
    this.o = { debounceMs: 50, backoffMs: 200, maxBackoffMs: 10_000, ...opts };
    this.retryDelay = this.o.backoffMs;
    const ctl = { log: opts.log, backoffMs: this.o.backoffMs, maxBackoffMs: this.o.maxBackoffMs, changed: () => this.trigger() };
    this.watchers = [
      new Watcher('services', opts.api.services as ObjectWatch<unknown>, ctl),
      new Watcher('nodes', opts.api.nodes as ObjectWatch<unknown>, ctl),
      new Watcher('endpointslices', opts.api.endpointSlices as ObjectWatch<unknown>, ctl),
    ];
  }

  /** Starts the watches; resolves after the first reconcile over the full initial state. */
  async start(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.start()));
    if (this.stopped) return;
    this.started = true;
    await this.reconcileNow();
  }

  /** Stops watching. Addresses, status and finalizers stay as they are (SPEC: SIGTERM). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await Promise.all(this.watchers.map((w) => w.stop()));
    await this.running;
  }

  /** The virtual services last handed to onChange. */
  services(): K8sVirtualService[] {
    return this.desired;
  }

  private trigger(): void {
    if (!this.started || this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.reconcileNow();
    }, this.o.debounceMs);
  }

  /** Runs a reconcile (or queues one after the running one). */
  reconcileNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        let ok = false;
        try {
          ok = await this.reconcile();
        } catch (err) {
          this.o.log.error('kubernetes reconcile failed', { err: String((err as Error)?.message ?? err) });
        }
        this.generation++;
        if (ok) {
          this.retryDelay = this.o.backoffMs;
        } else if (!this.stopped && !this.retryTimer) {
          const d = this.retryDelay;
          this.retryDelay = Math.min(this.retryDelay * 2, this.o.maxBackoffMs);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            void this.reconcileNow();
          }, d);
        }
      } while (this.again && !this.stopped);
    };
    this.running = run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** One pass; false when something failed and should be retried. */
  private async reconcile(): Promise<boolean> {
    const { api, cfg, allocator, log } = this.o;
    const k = cfg.kubernetes;
    let ok = true;
    const call = async (what: string, svc: KService, f: () => Promise<void>): Promise<boolean> => {
      try {
        await f();
        return true;
      } catch (err) {
        ok = false;
        const code = apiStatus(err);
        (code === 409 || code === 404 ? log.info : log.warn).call(log, `cannot ${what}; will retry`, { service: serviceKey(svc), code, err: String((err as Error)?.message ?? err) });
        return false;
      }
    };
    const event = (svc: KService, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> =>
      api.createEvent(nsOf(svc), svc, type, reason, message).catch((err: unknown) => {
        log.warn('cannot create event', { service: serviceKey(svc), reason, err: String((err as Error)?.message ?? err) });
      });

    const services = api.services.list();
    const byKey = new Map(services.map((s) => [allocKey(s), s]));
    const ours = services.filter((s) => isOurs(s, k) && !s.metadata.deletionTimestamp);
    const ourKeys = new Set(ours.map(allocKey));

    // 1. Release what is no longer wanted.
    const released: { svc: KService | undefined; ip: string }[] = [];
    for (const [key, ip] of [...this.held]) {
      if (ourKeys.has(key)) continue;
      allocator.release(key);
      this.held.delete(key);
      released.push({ svc: byKey.get(key), ip });
      log.info('address released', { service: key, vip: ip });
    }
    for (const key of [...this.failures.keys()]) if (!ourKeys.has(key)) this.failures.delete(key);
    for (const key of [...this.written.keys()]) if (!ourKeys.has(key)) this.written.delete(key);

    // 2a. The finalizer first.
    const ready: KService[] = [];
    for (const svc of ours) {
      const fins = svc.metadata.finalizers ?? [];
      if (!fins.includes(FINALIZER)) {
        const added = await call('add the finalizer', svc, () => api.patchFinalizers(nsOf(svc), svc.metadata.name, [...fins, FINALIZER], (svc.metadata as { resourceVersion?: string }).resourceVersion));
        if (!added) continue;
      }
      ready.push(svc);
    }

    // 2b. Keep every address already in status before allocating anything new.
    const fresh: KService[] = [];
    for (const svc of ready) {
      const key = allocKey(svc);
      const settings = serviceSettings(svc, cfg.defaults);
      const ports = allocPorts(svc);
      const cur = this.held.get(key);
      const requested = requestedIPs(svc);
      if (cur !== undefined && requested.length > 0 && !requested.includes(cur)) {
        // The user asked for another address: give this one up and take the new one below.
        allocator.release(key);
        this.held.delete(key);
        await event(svc, 'Normal', 'IPReleased', `Released IP ${cur}: the Service now requests ${requested.join(', ')}`);
        fresh.push(svc);
        continue;
      }
      const keep = cur ?? (requested.length === 0 || requested.includes(statusIPs(svc)[0] ?? '') ? statusIPs(svc)[0] : undefined);
      if (keep === undefined) {
        fresh.push(svc);
        continue;
      }
      const r = allocator.assign(key, keep, ports, { sharingKey: settings.sharingKey });
      if (r.ok) {
        if (cur === undefined) {
          this.held.set(key, r.ip);
          log.info('address kept from status', { service: key, vip: r.ip });
          if (allocator.poolOf(r.ip) === undefined) {
            await event(svc, 'Warning', 'AddressOutsidePools', `Keeping IP ${r.ip}: it lies in no pool any more (addresses never move on their own)`);
          }
        }
      } else if (cur === undefined) {
        fresh.push(svc);
      } else {
        await this.failed(svc, key, `Cannot update the ports of ${key} on ${cur}: ${r.message}`, event);
      }
    }

    // 2c. New addresses: requested (must lie in a pool) or allocated.
    for (const svc of fresh) {
      const key = allocKey(svc);
      const settings = serviceSettings(svc, cfg.defaults);
      const ports = allocPorts(svc);
      const requested = requestedIPs(svc);
      let ip: string | undefined;
      let pool: string | undefined;
      let why = '';
      if (requested.length > 0) {
        for (const want of requested) {
          const r = allocator.assign(key, want, ports, { sharingKey: settings.sharingKey, requirePool: true, ...(settings.pool ? { pool: settings.pool } : {}) });
          if (r.ok) {
            ip = r.ip;
            pool = allocator.poolOf(r.ip);
            break;
          }
          why = r.message;
        }
      } else {
        const r = allocator.allocate(key, { ports, ...(settings.pool ? { pool: settings.pool } : {}), ...(settings.sharingKey ? { sharingKey: settings.sharingKey } : {}) });
        if (r.ok) {
          ip = r.ip;
          pool = r.pool;
        } else {
          why = r.message;
        }
      }
      if (ip === undefined) {
        await this.failed(svc, key, why, event);
        continue;
      }
      this.held.set(key, ip);
      this.failures.delete(key);
      log.info('address allocated', { service: key, vip: ip, pool });
      await event(svc, 'Normal', 'IPAllocated', `Assigned IP ${ip}${pool ? ` from pool ${pool}` : ''}`);
    }

    // 3. Status.
    for (const svc of ready) {
      const ip = this.held.get(allocKey(svc));
      // No address: leave the status alone (never clear an address this controller did not take).
      if (ip === undefined) continue;
      const want = [ip];
      const key = allocKey(svc);
      const rv = (svc.metadata as { resourceVersion?: string }).resourceVersion ?? '';
      if (!ingressDiffers(svc, want)) {
        this.written.delete(key);
        continue;
      }
      // Written already and the cache has not caught up with it yet: no second patch.
      const w = this.written.get(key);
      if (w && w.ip === ip && w.rv === rv) continue;
      if (await call('write the status', svc, () => api.patchServiceStatus(nsOf(svc), svc.metadata.name, want))) this.written.set(key, { ip, rv });
    }
    // Services that stopped being ours (type/class changed) lose the address we wrote.
    for (const r of released) {
      if (r.svc && !r.svc.metadata.deletionTimestamp && statusIPs(r.svc).includes(r.ip)) {
        await call('clear the status', r.svc, () => api.patchServiceStatus(nsOf(r.svc!), r.svc!.metadata.name, []));
      }
    }

    // 4. Desired virtual services.
    const nodes = eligibleNodes(api.nodes.list(), k.nodeAddressType);
    const slices = new Map<string, KEndpointSlice[]>();
    for (const s of api.endpointSlices.list()) {
      const owner = s.metadata.labels?.[SERVICE_NAME_LABEL];
      if (!owner) continue;
      const sk = `${s.metadata.namespace ?? 'default'}/${owner}`;
      slices.set(sk, [...(slices.get(sk) ?? []), s]);
    }
    const hc = cfg.defaults.healthCheck;
    const base = {
      healthCheck: { type: hc.type ?? 'tcp', interval: hc.interval, timeout: hc.timeout, rise: hc.rise, fall: hc.fall, path: hc.path },
      timeouts: cfg.defaults.timeouts,
      retries: cfg.defaults.retries,
      limits: cfg.defaults.limits,
    };
    const desired: K8sVirtualService[] = [];
    for (const svc of ready) {
      const key = allocKey(svc);
      const vip = this.held.get(key);
      if (vip === undefined) continue;
      const settings = serviceSettings(svc, cfg.defaults);
      const r = servicePorts({ svc, nodes, local: localEndpoints(slices.get(serviceKey(svc)) ?? []), base, k8s: k, settings });
      for (const p of [...settings.problems, ...r.problems]) log.debug('service problem', { service: key, problem: p });
      desired.push({ name: key, vip, ports: r.ports });
    }
    desired.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const text = JSON.stringify(desired);
    if (text !== this.lastDesired) {
      await this.o.onChange(desired);
      this.lastDesired = text;
      this.desired = desired;
    }

    // 5. Released: the Event, then the finalizer (listeners are closed by now).
    for (const r of released) {
      if (r.svc) await event(r.svc, 'Normal', 'IPReleased', `Released IP ${r.ip}`);
    }
    for (const svc of services) {
      if (ourKeys.has(allocKey(svc))) continue;
      const fins = svc.metadata.finalizers ?? [];
      if (!fins.includes(FINALIZER)) continue;
      await call('remove the finalizer', svc, () => api.patchFinalizers(nsOf(svc), svc.metadata.name, fins.filter((f) => f !== FINALIZER), (svc.metadata as { resourceVersion?: string }).resourceVersion));
    }
    return ok;
  }

  private async failed(svc: KService, key: string, message: string, event: (svc: KService, type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>): Promise<void> {
    if (this.failures.get(key) === message) return;
    this.failures.set(key, message);
    this.o.log.warn('service not served: no address', { code: 'EDGEPORT_ERR_ALLOCATION', service: key, reason: message });
    await event(svc, 'Warning', 'AllocationFailed', message);
  }
}
