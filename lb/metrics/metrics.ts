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
    this.configReloads.inc({ result: 'ok' }, 0);
    this.configReloads.inc({ result: 'error' }, 0);
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
