// The control plane of one appliance: configuration, data plane workers, admin listener,
// reload and graceful stop. The data plane does the traffic; this decides what it runs.

import type http from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { buildStatus, type StatusDoc } from './admin/status.ts';
import { statusPage } from './admin/page.ts';
import { startAdmin } from './admin/server.ts';
import { ConfigError, EdgeportError, formatProblem } from './core/errors.ts';
import type { Logger } from './core/log.ts';
import type { Config, LogLevel } from './core/types.ts';
import { loadConfigFile } from './config/load.ts';
import { HealthChecker, type HealthChange } from './health/checker.ts';
import { Allocator } from './ipam/allocator.ts';
import { loadState, saveState } from './ipam/state.ts';
import { restoreStatic } from './ipam/static.ts';
import { VipManager } from './reconcile/vips.ts';
// Kubernetes and HA modules are imported when enabled (startKube, startHa): @kubernetes/client-node
// puts ~26 MB on the heap of an appliance that serves static services only.
import type { HaManager } from './ha/manager.ts';
import type { KubeController, K8sVirtualService, PortError } from './k8s/controller.ts';
import { PORT_ERROR_BIND_FAILED } from './k8s/convert.ts';
import { listenerKey } from './core/types.ts';
import { createDataplane, resolveWorkers, type DataplaneHandle } from './dataplane/workers.ts';
import type { ListenerSpec } from './dataplane/types.ts';
import { Metrics, type ListenerState } from './metrics/metrics.ts';
import { desiredListeners, serviceVip } from './reconcile/desired.ts';

export interface AppOptions {
  configPath: string;
  log: Logger;
  logLevel: LogLevel;
  pretty: boolean;
  /** --kubeconfig: overrides kubernetes.kubeconfig. */
  kubeconfig?: string;
}

export class App {
  private readonly opts: AppOptions;
  private readonly log: Logger;
  cfg!: Config;
  private dp!: DataplaneHandle;
  private admin: http.Server | undefined;
  private metrics!: Metrics;
  private registry!: Registry;
  private listeners: ListenerSpec[] = [];
  private readonly states = new Map<string, ListenerState & { key: string }>();
  /** The VIP of every static service that has one (fixed or from its pool), by name. */
  private allocated = new Map<string, string>();
  /** Pool allocations of static services, as kept in state.dir. */
  private savedAllocations: Record<string, string> = {};
  private readonly allocErrors = new Map<string, string>();
  private allocator!: Allocator;
  private vips!: VipManager;
  private kube: KubeController | undefined;
  /** ha.enabled: which VIPs this appliance serves, through Leases. */
  private ha: HaManager | undefined;
  /** Virtual services of Kubernetes LoadBalancer Services, from the controller. */
  private k8sServices: K8sVirtualService[] = [];
  private kubeSynced = false;
  private checker!: HealthChecker;
  private readonly panicking = new Set<string>();
  private ready = false;
  private stopping = false;
  /** Reloads and stop run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: AppOptions) {
    this.opts = opts;
    this.log = opts.log;
  }

  /** Throws ConfigError (exit 2) or EdgeportError; the caller decides the exit code. */
  async start(): Promise<void> {
    this.cfg = loadConfigFile(this.opts.configPath);
    this.allocator = new Allocator(this.cfg.pools);
    const saved = await loadState(this.cfg.state.dir);
    for (const p of saved.problems) this.log.warn('state.dir problem', { dir: this.cfg.state.dir, problem: p });
    this.savedAllocations = saved.allocations;
    await this.allocateStatic(this.cfg);
    this.registry = new Registry();
    collectDefaultMetrics({ register: this.registry, prefix: 'edgeport_' });
    this.metrics = new Metrics(this.registry);
    const workers = resolveWorkers(this.cfg.dataplane.workers);
    this.checker = new HealthChecker({ log: this.log, onChange: (c) => this.onHealth(c) });
    this.vips = new VipManager({
      log: this.log,
      mode: this.cfg.announce.mode,
      ...(this.cfg.announce.interface ? { iface: this.cfg.announce.interface } : {}),
      events: {
        owned: (vip, owned) => {
          this.metrics.vipOwned.set({ vip }, owned ? 1 : 0);
          this.metrics.vipTransitions.inc({ vip });
        },
        conflict: (c, iface) => {
          this.log.warn('ARP conflict: another MAC claims an owned VIP', { interface: iface, vip: c.vip, mac: c.mac, count: c.count });
          this.ha?.foreignAnnouncement(c.vip);
        },
      },
    });
    await this.vips.start([...new Set(this.allocated.values())]);
    this.dp = await createDataplane({
      workers,
      engine: this.cfg.dataplane.engine,
      log: this.log,
      logLevel: this.opts.logLevel,
      pretty: this.opts.pretty,
      hooks: { connectFailure: (l, b, reason) => this.checker.passiveFailure(l, b, reason) },
    });
    try {
      this.admin = await startAdmin(this.cfg.admin.listen, this.adminHandlers(), this.log);
    } catch (err) {
      await this.dp.stop(0);
      const e = err as NodeJS.ErrnoException;
      throw new EdgeportError('EDGEPORT_ERR_ADMIN_BIND', `Cannot listen on admin address ${this.cfg.admin.listen.host}:${this.cfg.admin.listen.port}: ${e.message}`, { cause: err });
    }
    this.log.info('edgeport starting', {
      node: this.cfg.node.name,
      config: this.opts.configPath,
      workers,
      admin: `http://${this.cfg.admin.listen.host.includes(':') ? `[${this.cfg.admin.listen.host}]` : this.cfg.admin.listen.host}:${(this.admin.address() as { port: number }).port}`,
    });
    if (this.cfg.ha.enabled) await this.startHa();
    await this.applyConfig(this.cfg);
    if (this.cfg.kubernetes.enabled) await this.startKube();
    this.ready = true;
  }

  /** Watch LoadBalancer Services; the data plane keeps serving whatever the API server does. */
  private async startKube(): Promise<void> {
    const kubeconfig = this.opts.kubeconfig ?? this.cfg.kubernetes.kubeconfig;
    const { createKubeApi } = await import('./k8s/client.ts');
    const { KubeController } = await import('./k8s/controller.ts');
    this.kube = new KubeController({
      api: createKubeApi({ kubeconfig, instance: this.cfg.node.name }),
      cfg: this.cfg,
      allocator: this.allocator,
      log: this.log.child({ component: 'kubernetes' }),
      ...(this.ha ? { isLeader: () => this.ha!.isLeader() } : {}),
      onChange: (svcs) => {
        const run = async () => {
          if (this.stopping) return;
          this.k8sServices = svcs;
          await this.applyConfig(this.cfg);
        };
        const p = this.queue.then(run, run);
        this.queue = p;
        return p;
      },
    });
    this.kube.start().then(
      () => {
        this.kubeSynced = true;
        this.log.info('kubernetes caches synced', { services: this.k8sServices.length });
      },
      (err: unknown) => this.log.error('kubernetes controller failed', { err }),
    );
  }

  /**
   * HA: every VIP stays local and bound on every appliance; the VipManager answers ARP only for
   * the VIPs whose Lease we hold, so a takeover is an ARP announcement, not a bind.
   */
  private async startHa(): Promise<void> {
    const kubeconfig = this.opts.kubeconfig ?? this.cfg.kubernetes.kubeconfig;
    const { makeKubeConfig } = await import('./k8s/client.ts');
    const { KubeLeases } = await import('./ha/coordination.ts');
    const { HaManager } = await import('./ha/manager.ts');
    const log = this.log.child({ component: 'ha' });
    const ha = new HaManager({
      coord: new KubeLeases({ kc: makeKubeConfig(kubeconfig), namespace: this.cfg.ha.leaseNamespace, onError: (what, err) => log.warn(what, { err: String((err as Error)?.message ?? err) }) }),
      self: this.cfg.node.name,
      cfg: this.cfg.ha,
      log,
      onOwned: () => this.vips.refresh(),
      healthy: (vip) => this.vipHealthy(vip),
      onLeader: () => this.kube?.leaderChanged(),
    });
    this.ha = ha;
    this.vips.setGate((vip) => ha.ownedVips().has(vip));
    ha.start();
  }

  /** A VIP can be served here: every listener on it bound, each with a backend up. */
  private vipHealthy(vip: string): boolean {
    let any = false;
    for (const l of this.listeners) {
      if (l.vip !== vip) continue;
      any = true;
      if (!this.states.get(l.key)?.up || l.spec.backends.length === 0 || this.checker.allDown(l.key)) return false;
    }
    return any;
  }

  /** The admin port actually bound (admin.listen may say port 0 in tests). */
  adminPort(): number {
    return (this.admin?.address() as { port: number } | null)?.port ?? 0;
  }

  /** Give every static service its VIP: fixed ones, then saved pool addresses, then new ones. */
  private async allocateStatic(cfg: Config): Promise<void> {
    const r = restoreStatic(
      this.allocator,
      cfg.services.map((s) => ({ name: s.name, address: s.address, pool: s.pool, ports: s.ports.map((p) => ({ port: p.port, protocol: p.protocol })) })),
      this.savedAllocations,
    );
    for (const p of r.problems) this.log.warn('address allocation', { problem: p });
    this.allocErrors.clear();
    for (const s of cfg.services) {
      if (!r.vips.has(s.name)) {
        const why = r.problems.find((p) => p.includes(`"${s.name}"`)) ?? 'no address could be allocated';
        this.allocErrors.set(s.name, why);
        this.log.error('service not served: no address', { code: 'EDGEPORT_ERR_ALLOCATION', service: s.name, pool: s.pool, reason: why });
      }
    }
    this.allocated = r.vips;
    if (r.changed) {
      try {
        await saveState(cfg.state.dir, r.allocations);
      } catch (err) {
        this.log.error('cannot save pool allocations; they will be redone at restart', { dir: cfg.state.dir, err });
      }
    }
    this.savedAllocations = r.allocations;
    for (const [name, ip] of r.vips) {
      const pool = cfg.services.find((s) => s.name === name)?.pool;
      if (pool) this.log.info('address allocated', { service: name, pool, vip: ip });
    }
  }

  private async applyConfig(cfg: Config): Promise<void> {
    const listeners = [
      ...desiredListeners(cfg, this.allocated),
      ...this.k8sServices.flatMap((s) => s.ports.map((p) => ({ key: listenerKey(s.vip, p.port, p.protocol), service: s.name, vip: s.vip, spec: p }))),
    ];
    await this.vips.prepare([...new Set(listeners.map((l) => l.vip))]);
    const result = await this.dp.apply({ listeners });
    this.listeners = listeners;
    this.checker.sync(listeners);
    const failed = new Map(result.failed.map((f) => [f.key, f]));
    const bound = new Set(listeners.filter((l) => !failed.has(l.key)).map((l) => l.vip));
    this.vips.commit([...bound], Math.max(cfg.defaults.timeouts.drain, ...listeners.map((l) => l.spec.timeouts.drain)));
    this.ha?.setVips([...new Set(listeners.map((l) => l.vip))]);
    const owned = new Set(this.vips.ownedVips());
    for (const v of bound) if (!owned.has(v)) this.metrics.vipOwned.set({ vip: v }, 0);
    // Kubernetes Services learn which of their ports could not be bound (status ports[].error).
    const portErrors = new Map<string, PortError[]>();
    for (const ls of listeners) {
      if (!failed.has(ls.key) || !ls.service.startsWith('k8s/')) continue;
      portErrors.set(ls.service, [...(portErrors.get(ls.service) ?? []), { port: ls.spec.port, protocol: ls.spec.protocol, error: PORT_ERROR_BIND_FAILED }]);
    }
    this.kube?.setPortErrors(portErrors);
    for (const key of this.panicking) if (!listeners.some((l) => l.key === key)) this.panicking.delete(key);
    this.states.clear();
    for (const ls of listeners) {
      const f = failed.get(ls.key);
      this.states.set(ls.key, { key: ls.key, service: ls.service, vip: ls.vip, port: ls.spec.port, protocol: ls.spec.protocol, up: !f, ...(f ? { error: f.error } : {}) });
      if (f) {
        this.log.error('cannot bind listener', { code: 'EDGEPORT_ERR_BIND', listener: ls.key, service: ls.service, error: f.error });
      } else {
        this.log.info('serving', {
          listener: ls.key,
          service: ls.service,
          scheduler: ls.spec.scheduler,
          backends: ls.spec.backends.map((b) => `${b.address}:${b.port}${b.weight !== 1 ? `*${b.weight}` : ''}`).join(', '),
        });
      }
    }
  }

  private onHealth(c: HealthChange): void {
    this.dp.setBackendUp(c.listener, c.backend, c.up).catch((err: unknown) => this.log.error('cannot pass health to the data plane', { err }));
    const all = this.checker.allDown(c.listener);
    if (all && !this.panicking.has(c.listener)) {
      this.panicking.add(c.listener);
      this.log.warn('panic: every backend is down; sending to all of them', { listener: c.listener, service: c.service });
    } else if (!all && this.panicking.delete(c.listener)) {
      this.log.info('panic over: a backend is up again', { listener: c.listener, service: c.service, backend: c.backend });
    }
  }

  /** SIGHUP: validate the new file first; an invalid one is refused and the running config stays. */
  reload(): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      if (this.stopping) return false;
      let next: Config;
      try {
        next = loadConfigFile(this.opts.configPath);
      } catch (err) {
        this.metrics.configReloads.inc({ result: 'error' });
        const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String((err as Error).message)];
        this.log.error('reload refused: the running configuration stays', { config: this.opts.configPath, problems });
        return false;
      }
      if (JSON.stringify(next.admin) !== JSON.stringify(this.cfg.admin)) this.log.warn('admin.listen changed: takes effect at restart');
      if (JSON.stringify(next.announce) !== JSON.stringify(this.cfg.announce)) this.log.warn('announce changed: takes effect at restart');
      this.allocator.setPools(next.pools);
      await this.allocateStatic(next);
      this.kube?.updateConfig(next);
      if (JSON.stringify(next.dataplane) !== JSON.stringify(this.cfg.dataplane)) this.log.warn('dataplane settings changed (workers, engine): take effect at restart');
      await this.applyConfig(next);
      this.cfg = next;
      this.metrics.configReloads.inc({ result: 'ok' });
      this.log.info('reload ok', { config: this.opts.configPath });
      return true;
    };
    const p = this.queue.then(run, run);
    this.queue = p;
    return p;
  }

  /** SIGTERM/SIGINT: close listeners, let connections finish for at most timeouts.drain, then stop. */
  stop(): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.stopping) return;
      this.stopping = true;
      this.ready = false;
      if (!this.dp) return; // stopped during start-up, before a data plane existed
      const drain = Math.max(this.cfg.defaults.timeouts.drain, ...this.listeners.map((l) => l.spec.timeouts.drain));
      this.vips.stopAnswering();
      await this.ha?.stop(); // Leases released: a watching peer takes the VIPs at once
      await this.kube?.stop(); // Service status and finalizers stay (SPEC)
      this.log.info('stopping: listeners closed, draining', { drainMs: drain });
      this.checker?.stop();
      await this.dp.stop(drain);
      await this.vips.close();
      await new Promise<void>((resolve) => {
        if (!this.admin) return resolve();
        this.admin.close(() => resolve());
        this.admin.closeAllConnections();
      });
      this.log.info('stopped');
    };
    const p = this.queue.then(run, run);
    this.queue = p;
    return p;
  }

  async status(): Promise<StatusDoc> {
    const stats = await this.dp.stats();
    const owned = new Set(this.vips.ownedVips());
    const arp = this.vips.arpStats();
    const self = this.cfg.node.name;
    const ownership = (vip: string | undefined) => {
      if (vip === undefined) return { owner: null, preferredOwner: self };
      if (!this.ha) return { owner: owned.has(vip) ? self : null, preferredOwner: self };
      const v = this.ha.view(vip);
      return { owner: v.owner, preferredOwner: v.preferredOwner, leaseAgeMs: v.leaseAgeMs, ...(v.expired ? { leaseExpired: true } : {}) };
    };
    return buildStatus({
      node: this.cfg.node.name,
      ready: this.ready,
      services: [
        ...this.cfg.services.map((s) => {
          const vip = serviceVip(s, this.allocated);
          const err = this.allocErrors.get(s.name);
          return { name: s.name, vip, pool: s.pool, ...ownership(vip), ...(err ? { error: err } : {}) };
        }),
        ...this.k8sServices.map((s) => ({
          name: s.name,
          vip: s.vip,
          pool: this.allocator.poolOf(s.vip),
          ...ownership(s.vip),
        })),
      ],
      listeners: this.listeners,
      states: [...this.states.values()],
      stats,
      health: (l, b) => this.checker.health(l, b),
      ...(arp && this.vips.iface ? { arp: { interface: this.vips.iface, requests: arp.requests, replies: arp.replies, gratuitous: arp.gratuitous, conflicts: arp.vipConflicts } } : {}),
    });
  }

  private adminHandlers() {
    return {
      ready: () => {
        const reasons: string[] = [];
        if (!this.ready) reasons.push(this.stopping ? 'stopping' : 'starting');
        if (this.ready && !this.vips.allAnnounced()) reasons.push('a VIP has not been announced yet');
        if (this.ready && this.kube && !this.kubeSynced) reasons.push('kubernetes caches have not synced');
        for (const s of this.states.values()) if (!s.up) reasons.push(`listener ${s.key} is not bound: ${s.error ?? 'unknown'}`);
        return { ok: reasons.length === 0, reasons };
      },
      metrics: async () => {
        const stats = await this.dp.stats();
        this.metrics.observe(stats, [...this.states.values()]);
        this.metrics.observePools(this.allocator.usage());
        const ports = new Map(this.listeners.map((l) => [l.key, l.spec.port]));
        this.metrics.observeHealth(this.checker.snapshot().map((h) => ({ ...h, port: ports.get(h.listener) ?? 0 })));
        const arp = this.vips.arpStats();
        if (arp && this.vips.iface) this.metrics.observeArp(this.vips.iface, arp);
        return { contentType: this.registry.contentType, body: await this.registry.metrics() };
      },
      status: () => this.status(),
      page: () => statusPage(this.cfg.node.name),
    };
  }
}
