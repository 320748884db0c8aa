// Prometheus metrics (prom-client). The registry is passed in, never the global one.
// The data plane keeps plain counters on its hot path; `observe` copies a stats snapshot
// (summed over workers) into the metrics right before each scrape.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { DataplaneStats } from '../dataplane/types.ts';

export interface ListenerState {
  service: string;
  vip: string;
  port: number;
  protocol: string;
  up: boolean;
  error?: string;
}

export class Metrics {
  readonly registry: Registry;
  readonly connectionsTotal: Counter;
  readonly activeConnections: Gauge;
  readonly bytesTotal: Counter;
  readonly udpSessionsActive: Gauge;
  readonly connectFailures: Counter;
  readonly backendUp: Gauge;
  readonly limitRejected: Counter;
  readonly noBackend: Counter;
  readonly panic: Gauge;
  readonly configReloads: Counter;
  readonly listenerUp: Gauge;
  readonly poolAddresses: Gauge;
  readonly healthChecks: Counter;
  readonly arpRequests: Counter;
  readonly arpReplies: Counter;
  readonly arpGratuitous: Counter;
  readonly arpConflicts: Counter;
  readonly vipOwned: Gauge;
  readonly vipTransitions: Counter;

  constructor(registry: Registry) {
    this.registry = registry;
    const r = [registry];
    const conn = ['service', 'port', 'protocol', 'backend'] as const;
    this.connectionsTotal = new Counter({ name: 'edgeport_connections_total', help: 'TCP connections and UDP sessions opened to a backend', labelNames: conn, registers: r });
    this.activeConnections = new Gauge({ name: 'edgeport_active_connections', help: 'Open TCP connections and UDP sessions per backend', labelNames: conn, registers: r });
    this.bytesTotal = new Counter({ name: 'edgeport_bytes_total', help: 'Bytes from clients (rx) and to clients (tx)', labelNames: ['service', 'port', 'protocol', 'direction'], registers: r });
    this.udpSessionsActive = new Gauge({ name: 'edgeport_udp_sessions_active', help: 'Active UDP sessions per port', labelNames: ['service', 'port'], registers: r });
    this.connectFailures = new Counter({ name: 'edgeport_connect_failures_total', help: 'Client connects a backend refused or did not accept in time (health checks not counted)', labelNames: ['service', 'port', 'backend'], registers: r });
    this.backendUp = new Gauge({ name: 'edgeport_backend_up', help: '1 when the backend is healthy', labelNames: ['service', 'port', 'backend'], registers: r });
    this.limitRejected = new Counter({ name: 'edgeport_limit_rejected_total', help: 'Connections closed at once and UDP sessions dropped because limits were reached', labelNames: ['service', 'port', 'protocol'], registers: r });
    this.noBackend = new Counter({ name: 'edgeport_no_backend_total', help: 'Connections and sessions refused because no backend could take them', labelNames: ['service', 'port', 'protocol'], registers: r });
    this.panic = new Gauge({ name: 'edgeport_panic', help: '1 when every backend of a port is down and traffic goes to all of them', labelNames: ['service', 'port', 'protocol'], registers: r });
    this.configReloads = new Counter({ name: 'edgeport_config_reloads_total', help: 'Configuration reloads by result', labelNames: ['result'], registers: r });
    this.listenerUp = new Gauge({ name: 'edgeport_listener_up', help: '1 when the VIP:port listener is bound', labelNames: ['service', 'vip', 'port', 'protocol'], registers: r });
    this.healthChecks = new Counter({ name: 'edgeport_health_checks_total', help: 'Health check results (active, and passive failures) per backend', labelNames: ['service', 'port', 'backend', 'result'], registers: r });
    this.poolAddresses = new Gauge({ name: 'edgeport_pool_addresses', help: 'Addresses of each pool by state', labelNames: ['pool', 'state'], registers: r });
    const iface = ['interface'] as const;
    this.arpRequests = new Counter({ name: 'edgeport_arp_requests_total', help: 'ARP requests for owned VIPs received', labelNames: iface, registers: r });
    this.arpReplies = new Counter({ name: 'edgeport_arp_replies_total', help: 'ARP replies sent', labelNames: iface, registers: r });
    this.arpGratuitous = new Counter({ name: 'edgeport_arp_gratuitous_total', help: 'Gratuitous ARP frames sent', labelNames: iface, registers: r });
    this.arpConflicts = new Counter({ name: 'edgeport_arp_conflicts_total', help: 'ARP frames from another MAC claiming an owned VIP', labelNames: iface, registers: r });
    this.vipOwned = new Gauge({ name: 'edgeport_vip_owned', help: '1 when this appliance owns (binds and announces) the VIP', labelNames: ['vip'], registers: r });
    this.vipTransitions = new Counter({ name: 'edgeport_vip_transitions_total', help: 'Times this appliance took or gave up the VIP', labelNames: ['vip'], registers: r });
    this.configReloads.inc({ result: 'ok' }, 0);
    this.configReloads.inc({ result: 'error' }, 0);
  }

  /** Cumulative ARP counters of the responder on `iface`. */
  observeArp(iface: string, s: { requests: number; replies: number; gratuitous: number; conflicts: number }): void {
    const l = { interface: iface };
    for (const [m, v] of [
      [this.arpRequests, s.requests],
      [this.arpReplies, s.replies],
      [this.arpGratuitous, s.gratuitous],
      [this.arpConflicts, s.conflicts],
    ] as const) {
      m.reset();
      m.inc(l, v);
    }
  }

  observeHealth(rows: readonly { service: string; port: number; backend: string; checks: number; failures: number }[]): void {
    this.healthChecks.reset();
    for (const h of rows) {
      const l = { service: h.service, port: String(h.port), backend: h.backend };
      this.healthChecks.inc({ ...l, result: 'ok' }, h.checks - h.failures);
      this.healthChecks.inc({ ...l, result: 'fail' }, h.failures);
    }
  }

  observePools(usage: readonly { pool: string; used: bigint; free: bigint }[]): void {
    this.poolAddresses.reset();
    for (const u of usage) {
      this.poolAddresses.set({ pool: u.pool, state: 'used' }, Number(u.used));
      this.poolAddresses.set({ pool: u.pool, state: 'free' }, Number(u.free));
    }
  }

  /** Copy a data plane snapshot into the per-listener metrics. */
  observe(stats: DataplaneStats, listeners: readonly ListenerState[]): void {
    for (const m of [this.connectionsTotal, this.activeConnections, this.bytesTotal, this.udpSessionsActive, this.connectFailures, this.backendUp, this.limitRejected, this.noBackend, this.panic, this.listenerUp]) {
      m.reset();
    }
    for (const l of stats.listeners) {
      const port = String(l.port);
      const svc = { service: l.service, port, protocol: l.protocol };
      this.bytesTotal.inc({ ...svc, direction: 'rx' }, l.bytesRx);
      this.bytesTotal.inc({ ...svc, direction: 'tx' }, l.bytesTx);
      this.limitRejected.inc(svc, l.limitRejected);
      this.noBackend.inc(svc, l.noBackend);
      if (l.protocol === 'UDP') this.udpSessionsActive.set({ service: l.service, port }, l.udpSessionsActive);
      let anyUp = false;
      for (const b of l.backends) {
        const lb = { ...svc, backend: b.id };
        this.connectionsTotal.inc(lb, b.total);
        this.activeConnections.set(lb, b.active);
        this.connectFailures.inc({ service: l.service, port, backend: b.id }, b.connectFailures);
        if (!b.draining) this.backendUp.set({ service: l.service, port, backend: b.id }, b.up ? 1 : 0);
        if (b.up && !b.draining) anyUp = true;
      }
      this.panic.set(svc, anyUp ? 0 : 1);
    }
    for (const l of listeners) {
      this.listenerUp.set({ service: l.service, vip: l.vip, port: String(l.port), protocol: l.protocol }, l.up ? 1 : 0);
    }
  }
}
