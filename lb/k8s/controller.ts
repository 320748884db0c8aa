// The Kubernetes controller: watches Services, Nodes and EndpointSlices, gives Edgeport's
// LoadBalancer Services an address from the shared allocator, writes their status, keeps the
// finalizer and the Events, and tells the app which virtual services to run
// (SPEC "Kubernetes conventions"). The API is behind KubeApi (lb/k8s/client.ts).
//
// One reconcile runs at a time over the whole cached state (debounced), in this order:
//   1. release the addresses of Services deleted, gone or no longer ours;
//   2. for each of our Services, oldest first: the finalizer first; then keep the address it
//      holds or has in status (every one of those is assigned before anything new is
//      allocated: restart stability). An address that cannot be kept (another Service holds
//      it) is never swapped for another one, as addresses never move on their own: the
//      Service gets AllocationFailed and waits, and every later reconcile tries again. Only
//      a Service with no address, or whose user asks for another address or pool, gets a new
//      one: the requested address (must lie in a pool), else one allocated;
//   3. status patches where the ingress differs, with ports[].error for ports not served
//      (a clash on a shared address, or what the app reported through setPortErrors);
//   4. onChange(desired) when the virtual services changed, awaited (listeners closed);
//   5. then IPReleased and finalizer removal for what step 1 released.
// A failed API call makes the reconcile run again after a backoff. The allocator is the one
// record of which Service serves which port of a shared address: a port it does not hold for
// a Service is never handed to the data plane, so two Services never claim one listener.

import type { Config, PortSpec } from '../core/types.ts';
import type { Logger } from '../core/log.ts';
import type { AllocFailure, Allocator, ServicePort } from '../ipam/allocator.ts';
import { apiStatus, isAbort, type EventType, type KubeApi, type ObjectWatch } from './client.ts';
import {
  eligibleNodes,
  FINALIZER,
  ingressFor,
  ingressMatches,
  isOurs,
  isPortErrorReason,
  localEndpoints,
  PORT_ERROR_BIND_FAILED,
  portId,
  portStatuses,
  requestedIPs,
  serviceKey,
  servicePorts,
  serviceSettings,
  servablePorts,
  type KEndpointSlice,
  type KService,
  type ServiceSettings,
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
  /**
   * HA: whether this appliance holds the edgeport-leader Lease (default: always). Only the
   * leader adds finalizers, allocates, writes status and emits Events; the others serve what
   * the leader wrote in the Services' status. Call leaderChanged() when it changes.
   */
  isLeader?: () => boolean;
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

function createdMs(svc: KService): number {
  const t = svc.metadata.creationTimestamp;
  const ms = t === undefined ? NaN : new Date(t).getTime();
  return Number.isNaN(ms) ? Infinity : ms;
}

/** Oldest first, then by name: when two Services claim one address, the older keeps it. */
function byAge(a: KService, b: KService): number {
  const ka = allocKey(a);
  const kb = allocKey(b);
  return createdMs(a) - createdMs(b) || (ka < kb ? -1 : ka > kb ? 1 : 0);
}

const NO_PORTS: ReadonlySet<string> = new Set();
const NO_ERRORS: ReadonlyMap<string, string> = new Map();

/** One port the app could not serve, for status.loadBalancer.ingress[].ports[].error. */
export interface PortError {
  port: number;
  protocol: string;
  /** A PortStatus.error reason, such as PORT_ERROR_BIND_FAILED ("edgeport.io/BindFailed"). */
  error: string;
}

type Emit = (svc: KService, type: EventType, reason: string, message: string) => Promise<void>;

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
  private readonly o: Required<Omit<KubeControllerOptions, 'cfg' | 'allocator' | 'api' | 'log' | 'onChange' | 'isLeader'>> & KubeControllerOptions;
  /** The settings in force: the constructor's, then each updateConfig's. */
  private cfg: Pick<Config, 'kubernetes' | 'defaults'>;
  private readonly watchers: Watcher[];
  /** Allocator key -> address, for the Services this controller gave one. */
  private readonly held = new Map<string, string>();
  /** Allocator key -> last AllocationFailed message (one Event per distinct failure). */
  private readonly failures = new Map<string, string>();
  /**
   * Status patches sent, with the resourceVersions of views that cannot show them yet: the one
   * seen then, and the one our own finalizer patch of that pass produced (stale-cache guard:
   * such a view gets no second patch). resourceVersions are opaque, never compared for order.
   */
  private readonly written = new Map<string, { text: string; staleRvs: Set<string> }>();
  /** Allocator key -> resourceVersion our finalizer patch of the running pass produced. */
  private readonly finalizerRv = new Map<string, string>();
  /** Allocator key -> 'port/PROTO' -> reason: the app's bind failures (setPortErrors). */
  private portErrors = new Map<string, Map<string, string>>();
  private lastDesired = '';
  private desired: K8sVirtualService[] = [];
  private started = false;
  private stopped = false;
  private debounce: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private running: Promise<void> | undefined;
  private again = false;
  /** false once an API call of the running reconcile failed: it runs again after a backoff. */
  private passOk = true;
  /** Reconciles completed (for tests and the status page). */
  generation = 0;

  constructor(opts: KubeControllerOptions) {
    this.o = { debounceMs: 50, backoffMs: 200, maxBackoffMs: 10_000, ...opts };
    this.cfg = opts.cfg;
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

  /**
   * A reloaded configuration (SIGHUP): its kubernetes and defaults settings apply from the
   * reconcile this schedules (class, claimUnclassed, nodeAddressType, nodeHealthCheck,
   * scheduler, timeouts...). kubernetes.kubeconfig needs a restart: the watches keep their
   * client. Returns at once, on purpose: the app runs reloads and onChange on one queue, so
   * a reload that awaited the reconcile (which awaits onChange) would wait for itself.
   */
  updateConfig(cfg: Pick<Config, 'kubernetes' | 'defaults'>): void {
    if (cfg.kubernetes.kubeconfig !== this.cfg.kubernetes.kubeconfig) this.o.log.warn('kubernetes.kubeconfig changed: takes effect at restart');
    this.cfg = cfg;
    this.trigger();
  }

  /**
   * The ports the app cannot serve (listeners that failed to bind), per virtual service name
   * 'k8s/NAMESPACE/NAME'. Replaces what was set before: pass every failure each time, and an
   * empty map once all listeners are up. They appear as ports[].error in the Service's
   * status from the reconcile this schedules. A reason that is not a valid PortStatus.error
   * (CamelCase, optionally "domain/") is written as PORT_ERROR_BIND_FAILED. Returns at once,
   * for the reason given at updateConfig.
   */
  setPortErrors(errors: ReadonlyMap<string, readonly PortError[]>): void {
    const next = new Map<string, Map<string, string>>();
    for (const [name, list] of errors) {
      if (list.length === 0) continue;
      next.set(name, new Map(list.map((e) => [portId(e.port, e.protocol), isPortErrorReason(e.error) ? e.error : PORT_ERROR_BIND_FAILED])));
    }
    const text = (m: Map<string, Map<string, string>>) => JSON.stringify([...m].map(([k, v]) => [k, [...v].sort()]).sort());
    if (text(next) === text(this.portErrors)) return;
    this.portErrors = next;
    this.trigger();
  }

  /** HA: the edgeport-leader Lease changed hands; the next reconcile leads or follows. */
  leaderChanged(): void {
    this.trigger();
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
    this.passOk = true;
    const services = this.o.api.services.list();
    const byKey = new Map(services.map((s) => [allocKey(s), s]));
    const ours = services.filter((s) => isOurs(s, this.cfg.kubernetes) && !s.metadata.deletionTimestamp).sort(byAge);
    const ourKeys = new Set(ours.map(allocKey));

    if (this.o.isLeader && !this.o.isLeader()) {
      this.releaseGone(ourKeys, byKey);
      this.follow(ours);
      await this.publish(ours, this.clashes(ours));
      return true;
    }
    const released = this.releaseGone(ourKeys, byKey);
    const ready = await this.withFinalizer(ours);
    const moving: KService[] = [];
    for (const svc of ready) if (!(await this.keep(svc))) moving.push(svc);
    for (const svc of moving) await this.acquire(svc);
    const clashes = this.clashes(ready);
    await this.writeStatus(ready, clashes, released);
    await this.publish(ready, clashes);

    // 5. Released: the Event, then the finalizer (listeners are closed by now).
    for (const r of released) {
      if (r.svc) await this.event(r.svc, 'Normal', 'IPReleased', `Released IP ${r.ip}`);
    }
    for (const svc of services) {
      if (ourKeys.has(allocKey(svc))) continue;
      const fins = svc.metadata.finalizers ?? [];
      if (!fins.includes(FINALIZER)) continue;
      await this.call('remove the finalizer', svc, () => this.o.api.patchFinalizers(nsOf(svc), svc.metadata.name, fins.filter((f) => f !== FINALIZER), svc.metadata.resourceVersion));
    }
    return this.passOk;
  }

  /**
   * Not the leader (HA): take each Service's address from its status, as the leader wrote it,
   * into the allocator (so that a later leadership starts from the same books); allocate,
   * write and emit nothing.
   */
  private follow(ours: readonly KService[]): void {
    const { allocator, log } = this.o;
    for (const svc of ours) {
      const key = allocKey(svc);
      const ip = statusIPs(svc)[0];
      const cur = this.held.get(key);
      if (cur === ip) continue;
      if (cur !== undefined) {
        allocator.release(key);
        this.held.delete(key);
      }
      if (ip === undefined) continue;
      const r = this.assignServable(key, ip, servablePorts(svc), serviceSettings(svc, this.cfg.defaults).sharingKey);
      if (r.ok) this.held.set(key, ip);
      else log.debug('follower: cannot take the address in status', { service: key, vip: ip, reason: r.message });
    }
  }

  /** An API call of this pass; a failure is logged and makes the pass retry. */
  private async call(what: string, svc: KService, f: () => Promise<unknown>): Promise<boolean> {
    try {
      await f();
      return true;
    } catch (err) {
      this.passOk = false;
      const code = apiStatus(err);
      const log = this.o.log;
      (code === 409 || code === 404 ? log.info : log.warn).call(log, `cannot ${what}; will retry`, { service: serviceKey(svc), code, err: String((err as Error)?.message ?? err) });
      return false;
    }
  }

  /** Events are best effort: a lost one is logged, never retried. */
  private readonly event: Emit = (svc, type, reason, message) =>
    this.o.api.createEvent(nsOf(svc), svc, type, reason, message).catch((err: unknown) => {
      this.o.log.warn('cannot create event', { service: serviceKey(svc), reason, err: String((err as Error)?.message ?? err) });
    });

  /** 1. Release what is no longer wanted. */
  private releaseGone(ourKeys: ReadonlySet<string>, byKey: ReadonlyMap<string, KService>): { svc: KService | undefined; ip: string }[] {
    const released: { svc: KService | undefined; ip: string }[] = [];
    for (const [key, ip] of [...this.held]) {
      if (ourKeys.has(key)) continue;
      this.o.allocator.release(key);
      this.held.delete(key);
      released.push({ svc: byKey.get(key), ip });
      this.o.log.info('address released', { service: key, vip: ip });
    }
    for (const key of [...this.failures.keys()]) if (!ourKeys.has(key)) this.failures.delete(key);
    for (const key of [...this.written.keys()]) if (!ourKeys.has(key)) this.written.delete(key);
    return released;
  }

  /** 2a. The finalizer before any address: the Services that have it. */
  private async withFinalizer(ours: readonly KService[]): Promise<KService[]> {
    const ready: KService[] = [];
    this.finalizerRv.clear();
    for (const svc of ours) {
      const fins = svc.metadata.finalizers ?? [];
      if (!fins.includes(FINALIZER)) {
        const added = await this.call('add the finalizer', svc, async () => {
          const rv = await this.o.api.patchFinalizers(nsOf(svc), svc.metadata.name, [...fins, FINALIZER], svc.metadata.resourceVersion);
          if (rv) this.finalizerRv.set(allocKey(svc), rv);
        });
        if (!added) continue;
      }
      ready.push(svc);
    }
    return ready;
  }

  /** Does the user ask for another address than ip: requested addresses without it, or another pool? */
  private asksToMove(svc: KService, ip: string, settings: ServiceSettings): boolean {
    const requested = requestedIPs(svc);
    if (requested.length > 0) return !requested.includes(ip);
    const { allocator } = this.o;
    if (settings.pool === undefined || !allocator.poolNames().includes(settings.pool)) return false;
    // An address outside every pool (a pool shrank) stays: that move was not asked for.
    const where = allocator.poolOf(ip);
    return where !== undefined && where !== settings.pool;
  }

  /**
   * 2b. Keeps the address the Service holds, or else the one in its status. false when it
   * has none to keep or its user asks for another: it needs a new one (acquire).
   */
  private async keep(svc: KService): Promise<boolean> {
    const { allocator, log } = this.o;
    const key = allocKey(svc);
    const settings = serviceSettings(svc, this.cfg.defaults);
    const cur = this.held.get(key);
    const ip = cur ?? statusIPs(svc)[0];
    if (ip === undefined || this.asksToMove(svc, ip, settings)) return false;
    const r = this.assignServable(key, ip, servablePorts(svc), settings.sharingKey);
    if (!r.ok) {
      const why = cur === undefined ? `${r.message}; the Service waits for the address in its status (addresses never move on their own)` : `${r.message}; ${key} keeps serving as before`;
      await this.failed(svc, key, why);
      return true;
    }
    if (cur === undefined) {
      this.held.set(key, ip);
      log.info('address kept from status', { service: key, vip: ip });
      if (allocator.poolOf(ip) === undefined) {
        await this.event(svc, 'Warning', 'AddressOutsidePools', `Keeping IP ${ip}: it lies in no pool any more (addresses never move on their own)`);
      }
      // It waited for its address (AllocationFailed): say that it has it now.
      if (this.failures.has(key)) await this.event(svc, 'Normal', 'IPAllocated', `Assigned IP ${ip}, the address in its status`);
    }
    if (r.clash) await this.failed(svc, key, r.clash);
    else this.failures.delete(key);
    return true;
  }

  /**
   * Assigns ip with the Service's ports; when some of them clash with another Service sharing
   * the address, with the others (the address stays; the clashing ports go unserved and show
   * as PortClash in status). `clash` says which.
   */
  private assignServable(key: string, ip: string, ports: readonly ServicePort[], sharingKey: string | undefined): { ok: true; clash?: string } | AllocFailure {
    const { allocator } = this.o;
    const r = allocator.assign(key, ip, ports, { sharingKey });
    if (r.ok) return { ok: true };
    if (r.code !== 'PortClash') return r;
    const holders = this.portHolders(ip, key);
    const again = allocator.assign(key, ip, ports.filter((p) => !holders.has(portId(p.port, p.protocol))), { sharingKey });
    if (!again.ok) return again;
    const taken = ports.filter((p) => holders.has(portId(p.port, p.protocol))).map((p) => `${portId(p.port, p.protocol)} (served by "${holders.get(portId(p.port, p.protocol))}")`);
    return { ok: true, clash: `Cannot serve ${taken.join(', ')} of "${key}" on ${ip}: another Service sharing the address serves it; its other ports are served` };
  }

  /** 'port/PROTO' -> the other key serving it on ip. */
  private portHolders(ip: string, key: string): Map<string, string> {
    const others = new Set(this.o.allocator.keysOf(ip).filter((k) => k !== key));
    const m = new Map<string, string>();
    for (const a of this.o.allocator.snapshot()) {
      if (others.has(a.key)) for (const p of a.ports) m.set(portId(p.port, p.protocol), a.key);
    }
    return m;
  }

  /** 2c. A new address: the requested one (must lie in a pool), else one from a pool. */
  private async acquire(svc: KService): Promise<void> {
    const { allocator, log } = this.o;
    const key = allocKey(svc);
    const settings = serviceSettings(svc, this.cfg.defaults);
    const ports = servablePorts(svc);
    const requested = requestedIPs(svc);
    const cur = this.held.get(key);
    const pool = settings.pool ? { pool: settings.pool } : {};
    const shared = settings.sharingKey ? { sharingKey: settings.sharingKey } : {};
    let r: { ok: true; ip: string; pool: string | undefined } | { ok: false; message: string };
    if (requested.length > 0) {
      const why: string[] = [];
      r = { ok: false, message: '' };
      for (const want of requested) {
        const a = allocator.assign(key, want, ports, { ...shared, requirePool: true, ...pool });
        if (a.ok) {
          r = { ok: true, ip: a.ip, pool: allocator.poolOf(a.ip) };
          break;
        }
        why.push(a.message);
      }
      if (!r.ok) r = { ok: false, message: why.join('; ') };
    } else {
      r = allocator.allocate(key, { ports, ...pool, ...shared });
    }
    // On failure the allocator leaves the key as it was: a Service being moved keeps its address.
    if (!r.ok) {
      await this.failed(svc, key, cur === undefined ? r.message : `${r.message}; ${key} keeps ${cur}`);
      return;
    }
    this.held.set(key, r.ip);
    this.failures.delete(key);
    log.info('address allocated', { service: key, vip: r.ip, pool: r.pool, ...(cur !== undefined ? { previous: cur } : {}) });
    if (cur !== undefined && cur !== r.ip) {
      await this.event(svc, 'Normal', 'IPReleased', `Released IP ${cur}: the Service asks for ${requested.length > 0 ? requested.join(', ') : `pool ${settings.pool}`}`);
    }
    await this.event(svc, 'Normal', 'IPAllocated', `Assigned IP ${r.ip}${r.pool ? ` from pool ${r.pool}` : ''}`);
  }

  /** Per key, the servable ports the allocator does not hold for it: another Service serves them. */
  private clashes(ready: readonly KService[]): Map<string, Set<string>> {
    const heldPorts = new Map(this.o.allocator.snapshot().map((a) => [a.key, new Set(a.ports.map((p) => portId(p.port, p.protocol)))]));
    const out = new Map<string, Set<string>>();
    for (const svc of ready) {
      const key = allocKey(svc);
      const mine = heldPorts.get(key);
      if (!this.held.has(key) || !mine) continue;
      const missing = servablePorts(svc).map((p) => portId(p.port, p.protocol)).filter((id) => !mine.has(id));
      if (missing.length > 0) out.set(key, new Set(missing));
    }
    return out;
  }

  /** 3. Status: the address, and the ports that are not served. */
  private async writeStatus(ready: readonly KService[], clashes: ReadonlyMap<string, ReadonlySet<string>>, released: readonly { svc: KService | undefined; ip: string }[]): Promise<void> {
    const { api } = this.o;
    for (const svc of ready) {
      const key = allocKey(svc);
      const ip = this.held.get(key);
      // No address: leave the status alone (never clear an address this controller did not take).
      if (ip === undefined) continue;
      const want = [ingressFor(ip, portStatuses(svc, clashes.get(key) ?? NO_PORTS, this.portErrors.get(key) ?? NO_ERRORS))];
      const rv = svc.metadata.resourceVersion ?? '';
      if (ingressMatches(svc, want)) {
        this.written.delete(key);
        continue;
      }
      // Written already and the cache has not caught up with it yet: no second patch.
      const text = JSON.stringify(want);
      const w = this.written.get(key);
      if (w && w.text === text && w.staleRvs.has(rv)) continue;
      const staleRvs = new Set([rv, this.finalizerRv.get(key) ?? rv]);
      if (await this.call('write the status', svc, () => api.patchServiceStatus(nsOf(svc), svc.metadata.name, want))) this.written.set(key, { text, staleRvs });
    }
    // Services that stopped being ours (type/class changed) lose the address we wrote.
    for (const r of released) {
      const svc = r.svc;
      if (svc && !svc.metadata.deletionTimestamp && statusIPs(svc).includes(r.ip)) {
        await this.call('clear the status', svc, () => api.patchServiceStatus(nsOf(svc), svc.metadata.name, []));
      }
    }
  }

  /** 4. The virtual services: each served port's NodePort on every eligible node. */
  private async publish(ready: readonly KService[], clashes: ReadonlyMap<string, ReadonlySet<string>>): Promise<void> {
    const { api, log } = this.o;
    const cfg = this.cfg;
    const nodes = eligibleNodes(api.nodes.list(), cfg.kubernetes.nodeAddressType);
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
      const r = servicePorts({ svc, nodes, local: localEndpoints(slices.get(serviceKey(svc)) ?? []), base, k8s: cfg.kubernetes, settings });
      for (const p of [...settings.problems, ...r.problems]) log.debug('service problem', { service: key, problem: p });
      const clash = clashes.get(key) ?? NO_PORTS;
      desired.push({ name: key, vip, ports: r.ports.filter((p) => !clash.has(portId(p.port, p.protocol))) });
    }
    desired.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const text = JSON.stringify(desired);
    if (text !== this.lastDesired) {
      await this.o.onChange(desired);
      this.lastDesired = text;
      this.desired = desired;
    }
  }

  private async failed(svc: KService, key: string, message: string): Promise<void> {
    if (this.failures.get(key) === message) return;
    this.failures.set(key, message);
    const held = this.held.get(key);
    if (held === undefined) this.o.log.warn('service not served: no address', { code: 'EDGEPORT_ERR_ALLOCATION', service: key, reason: message });
    else this.o.log.warn('service not fully served', { code: 'EDGEPORT_ERR_ALLOCATION', service: key, vip: held, reason: message });
    await this.event(svc, 'Warning', 'AllocationFailed', message);
  }
}
