// The /status document (and `edgeport status --json`). Pure.

import type { DataplaneStats, ListenerSpec } from '../dataplane/types.ts';
import type { ListenerState } from '../metrics/metrics.ts';

export interface StatusBackend {
  address: string;
  port: number;
  weight: number;
  up: boolean;
  active: number;
  total: number;
  draining: boolean;
  connectFailures: number;
  /** Last health change (ISO time), null when none since start. */
  lastChange: string | null;
  /** Last health check result: "ok", a reason, or "not checked". */
  lastCheck: string;
}

export interface StatusPort {
  port: number;
  protocol: string;
  scheduler: string;
  listening: boolean;
  error?: string;
  panic: boolean;
  bytesRx: number;
  bytesTx: number;
  udpSessionsActive: number;
  backends: StatusBackend[];
}

export interface StatusService {
  name: string;
  vip: string | null;
  pool: string | null;
  /** The appliance that serves the VIP (node.name), null when none does. */
  owner: string | null;
  preferredOwner: string | null;
  /** HA: how long (ms) the owner has held the VIP's Lease, as this appliance has seen it. */
  leaseAgeMs?: number | null;
  /** HA: the owner has not renewed within ha.leaseDuration (as this appliance judges it). */
  leaseExpired?: boolean;
  /** Why the service has no VIP, when it has none. */
  error?: string;
  ports: StatusPort[];
}

export interface StatusArp {
  interface: string;
  requests: number;
  replies: number;
  gratuitous: number;
  conflicts: { vip: string; mac: string; at: string; count: number }[];
}

export interface StatusDoc {
  node: string;
  ready: boolean;
  services: StatusService[];
  arp?: StatusArp;
}

export function buildStatus(opts: {
  node: string;
  ready: boolean;
  services: readonly { name: string; vip: string | undefined; pool: string | undefined; owner: string | null; preferredOwner: string | null; leaseAgeMs?: number | null; leaseExpired?: boolean; error?: string }[];
  listeners: readonly ListenerSpec[];
  states: readonly (ListenerState & { key: string })[];
  stats: DataplaneStats;
  health?: (listener: string, backend: string) => { since: number; lastResult: string } | undefined;
  arp?: StatusArp;
}): StatusDoc {
  const stats = new Map(opts.stats.listeners.map((l) => [l.key, l]));
  const states = new Map(opts.states.map((s) => [s.key, s]));
  const services: StatusService[] = opts.services.map((s) => ({
    name: s.name,
    vip: s.vip ?? null,
    pool: s.pool ?? null,
    owner: s.owner,
    preferredOwner: s.preferredOwner,
    ...(s.leaseAgeMs !== undefined ? { leaseAgeMs: s.leaseAgeMs } : {}),
    ...(s.leaseExpired ? { leaseExpired: true } : {}),
    ...(s.error ? { error: s.error } : {}),
    ports: [],
  }));
  const byName = new Map(services.map((s) => [s.name, s]));
  for (const ls of opts.listeners) {
    const svc = byName.get(ls.service);
    if (!svc) continue;
    const st = stats.get(ls.key);
    const state = states.get(ls.key);
    const backends: StatusBackend[] = (st?.backends ?? []).map((b) => {
      const h = opts.health?.(ls.key, b.id);
      return {
        address: b.address,
        port: b.port,
        weight: b.weight,
        up: b.up,
        active: b.active,
        total: b.total,
        draining: b.draining,
        connectFailures: b.connectFailures,
        lastChange: h && h.since > 0 ? new Date(h.since).toISOString() : null,
        lastCheck: h?.lastResult ?? 'not checked',
      };
    });
    if (!st) {
      // Not listening (bind failed): show the configured backends.
      for (const b of ls.spec.backends) {
        backends.push({ address: b.address, port: b.port, weight: b.weight, up: true, active: 0, total: 0, draining: false, connectFailures: 0, lastChange: null, lastCheck: 'not checked' });
      }
    }
    svc.ports.push({
      port: ls.spec.port,
      protocol: ls.spec.protocol,
      scheduler: ls.spec.scheduler,
      listening: state?.up ?? false,
      ...(state?.error ? { error: state.error } : {}),
      panic: backends.length > 0 && !backends.some((b) => b.up && !b.draining),
      bytesRx: st?.bytesRx ?? 0,
      bytesTx: st?.bytesTx ?? 0,
      udpSessionsActive: st?.udpSessionsActive ?? 0,
      backends,
    });
  }
  return { node: opts.node, ready: opts.ready, services, ...(opts.arp ? { arp: opts.arp } : {}) };
}
