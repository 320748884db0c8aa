// The backends of one listener and their scheduler: the part that TCP and UDP share.
// A reload applies a new backend list as a diff: kept backends keep their counters,
// removed ones drain (no new picks, existing connections finish), added ones join.

import { backendKey, type BackendSpec, type SchedulerName } from '../core/types.ts';
import type { Backend, Scheduler } from '../scheduler/types.ts';
import { createScheduler } from '../scheduler/index.ts';
import type { BackendStats } from './types.ts';

export interface BackendState extends Backend {
  total: number;
  connectFailures: number;
}

export class BackendPool {
  /** Every backend the listener knows: configured ones first, then draining ones. */
  backends: BackendState[] = [];
  scheduler: Scheduler;
  schedulerName: SchedulerName;
  /** The scheduler keys on the client's address (sh, affinity): only then is it looked up per connection. */
  keyed: boolean;
  /** Client affinity timeout (ms), when the port has one (sessionAffinity: ClientIP). */
  affinityMs: number | undefined;

  constructor(scheduler: SchedulerName, specs: readonly BackendSpec[], affinityMs?: number) {
    this.schedulerName = scheduler;
    this.affinityMs = affinityMs;
    this.keyed = scheduler === 'sh' || affinityMs !== undefined;
    this.backends = specs.map(newBackend);
    this.scheduler = createScheduler(scheduler, this.backends, { affinityMs });
  }

  /** Apply a new configuration; returns the backends that started draining. */
  update(scheduler: SchedulerName, specs: readonly BackendSpec[], affinityMs?: number): BackendState[] {
    const old = new Map(this.backends.map((b) => [b.id, b]));
    const next: BackendState[] = [];
    for (const s of specs) {
      const id = backendKey(s.address, s.port);
      const b = old.get(id);
      if (b) {
        old.delete(id);
        b.weight = s.weight;
        b.draining = false;
        next.push(b);
      } else {
        next.push(newBackend(s));
      }
    }
    const drained: BackendState[] = [];
    for (const b of old.values()) {
      if (b.active > 0) {
        if (!b.draining) drained.push(b);
        b.draining = true;
        next.push(b);
      }
    }
    this.backends = next;
    if (scheduler !== this.schedulerName || affinityMs !== this.affinityMs) {
      this.schedulerName = scheduler;
      this.affinityMs = affinityMs;
      this.keyed = scheduler === 'sh' || affinityMs !== undefined;
      this.scheduler = createScheduler(scheduler, next, { affinityMs });
    } else {
      this.scheduler.update(next);
    }
    return drained;
  }

  /** A draining backend's last connection closed: forget it. */
  prune(): void {
    const before = this.backends.length;
    this.backends = this.backends.filter((b) => !b.draining || b.active > 0);
    if (this.backends.length !== before) this.scheduler.update(this.backends);
  }

  setUp(id: string, up: boolean): boolean {
    const b = this.backends.find((x) => x.id === id);
    if (!b || b.up === up) return false;
    b.up = up;
    this.scheduler.update(this.backends);
    return true;
  }

  open(b: BackendState): void {
    b.active++;
    b.total++;
    this.scheduler.onOpen?.(b);
  }

  close(b: BackendState): void {
    b.active--;
    this.scheduler.onClose?.(b);
    if (b.draining && b.active === 0) this.prune();
  }

  stats(): BackendStats[] {
    return this.backends.map((b) => ({
      id: b.id,
      address: b.address,
      port: b.port,
      weight: b.weight,
      up: b.up,
      draining: b.draining,
      active: b.active,
      total: b.total,
      connectFailures: b.connectFailures,
    }));
  }
}

function newBackend(s: BackendSpec): BackendState {
  return {
    id: backendKey(s.address, s.port),
    address: s.address,
    port: s.port,
    weight: s.weight,
    up: true,
    draining: false,
    active: 0,
    total: 0,
    connectFailures: 0,
  };
}
