// Active health checks (tcp connect, http 200, none) per backend of each listener, and
// passive checks: a client connect the data plane saw fail counts as a failed check.
// Results go through the pure state machine (state.ts); a change is reported once.

import http from 'node:http';
import net from 'node:net';
import type { Logger } from '../core/log.ts';
import { backendKey, type HealthCheckSpec } from '../core/types.ts';
import type { ListenerSpec } from '../dataplane/types.ts';
import { INITIAL_HEALTH, observe, type HealthState } from './state.ts';

export interface ProbeTarget {
  type: 'tcp' | 'http';
  address: string;
  port: number;
  path: string;
  timeout: number;
}

/** Resolves to undefined on success, or a short reason on failure. Never rejects. */
export type Probe = (t: ProbeTarget) => Promise<string | undefined>;

export interface HealthChange {
  listener: string;
  service: string;
  backend: string;
  up: boolean;
  reason: string;
}

export interface BackendHealth {
  up: boolean;
  /** ms since epoch of the last up/down change; 0: never changed since start. */
  since: number;
  lastResult: string;
  checks: number;
  failures: number;
}

interface Entry {
  listener: string;
  service: string;
  backend: string;
  address: string;
  port: number;
  spec: HealthCheckSpec;
  state: HealthState;
  since: number;
  lastResult: string;
  checks: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  running: boolean;
  stopped: boolean;
}

export const defaultProbe: Probe = (t) =>
  new Promise((resolve) => {
    if (t.type === 'tcp') {
      const s = net.connect({ host: t.address, port: t.port });
      const done = (r: string | undefined) => {
        s.destroy();
        resolve(r);
      };
      s.setTimeout(t.timeout, () => done(`no connect within ${t.timeout}ms`));
      s.once('connect', () => done(undefined));
      s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
      return;
    }
    const req = http.get({ host: t.address, port: t.port, path: t.path, agent: false, timeout: t.timeout, headers: { 'user-agent': 'edgeport-health' } }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code === 200 ? undefined : `HTTP ${code}`);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${t.timeout}ms`)));
    req.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });

export class HealthChecker {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;
  private readonly probe: Probe;
  private readonly onChange: (c: HealthChange) => void;

  constructor(opts: { log: Logger; onChange: (c: HealthChange) => void; probe?: Probe }) {
    this.log = opts.log;
    this.onChange = opts.onChange;
    this.probe = opts.probe ?? defaultProbe;
  }

  private static id(listener: string, backend: string): string {
    return `${listener}|${backend}`;
  }

  /** Check exactly the backends of these listeners; kept ones keep their state. */
  sync(listeners: readonly ListenerSpec[]): void {
    const want = new Set<string>();
    for (const ls of listeners) {
      for (const b of ls.spec.backends) {
        const backend = backendKey(b.address, b.port);
        const id = HealthChecker.id(ls.key, backend);
        want.add(id);
        const spec = ls.spec.healthCheck;
        const have = this.entries.get(id);
        if (have) {
          const changed = JSON.stringify(have.spec) !== JSON.stringify(spec);
          have.spec = spec;
          if (changed) this.arm(have, 0);
          continue;
        }
        const e: Entry = {
          listener: ls.key,
          service: ls.service,
          backend,
          address: b.address,
          port: b.port,
          spec,
          state: INITIAL_HEALTH,
          since: 0,
          lastResult: 'not checked yet',
          checks: 0,
          failures: 0,
          timer: undefined,
          running: false,
          stopped: false,
        };
        this.entries.set(id, e);
        this.arm(e, 0);
      }
    }
    for (const [id, e] of this.entries) {
      if (!want.has(id)) {
        e.stopped = true;
        clearTimeout(e.timer);
        this.entries.delete(id);
      }
    }
  }

  /** A client connect to this backend failed (refused, timed out, ICMP unreachable). */
  passiveFailure(listener: string, backend: string, reason: string): void {
    const e = this.entries.get(HealthChecker.id(listener, backend));
    if (!e) return;
    this.record(e, `passive: ${reason}`);
    // With no active check, nothing else would bring it back: retry after rise intervals.
    if (e.spec.type === 'none' && !e.state.up) this.arm(e, e.spec.interval * e.spec.rise);
  }

  health(listener: string, backend: string): BackendHealth | undefined {
    const e = this.entries.get(HealthChecker.id(listener, backend));
    return e && { up: e.state.up, since: e.since, lastResult: e.lastResult, checks: e.checks, failures: e.failures };
  }

  /** Counters of every checked backend, for metrics. */
  snapshot(): { listener: string; service: string; backend: string; checks: number; failures: number }[] {
    return [...this.entries.values()].map((e) => ({ listener: e.listener, service: e.service, backend: e.backend, checks: e.checks, failures: e.failures }));
  }

  /** Every checked backend of the listener is down (the data plane is in panic mode). */
  allDown(listener: string): boolean {
    let any = false;
    for (const e of this.entries.values()) {
      if (e.listener !== listener) continue;
      if (e.state.up) return false;
      any = true;
    }
    return any;
  }

  stop(): void {
    for (const e of this.entries.values()) {
      e.stopped = true;
      clearTimeout(e.timer);
    }
    this.entries.clear();
  }

  private arm(e: Entry, delay: number): void {
    clearTimeout(e.timer);
    if (e.stopped) return;
    if (e.spec.type === 'none') {
      e.timer = undefined;
      if (!e.state.up && delay > 0) {
        e.timer = setTimeout(() => {
          e.state = { up: false, streak: 0 };
          this.record(e, undefined, true);
        }, delay);
        e.timer.unref();
      }
      return;
    }
    // Spread the first checks over the interval so a large set does not fire at once.
    const wait = delay === 0 ? Math.floor((hash(e.listener + e.backend) % 1000) / 1000 * Math.min(e.spec.interval, 1000)) : delay;
    e.timer = setTimeout(() => void this.run(e), wait);
    e.timer.unref();
  }

  private async run(e: Entry): Promise<void> {
    if (e.stopped || e.running || e.spec.type === 'none') return;
    e.running = true;
    const result = await this.probe({
      type: e.spec.type,
      address: e.address,
      port: e.spec.port ?? e.port,
      path: e.spec.path,
      timeout: e.spec.timeout,
    });
    e.running = false;
    if (e.stopped) return;
    this.record(e, result);
    this.arm(e, e.spec.interval);
  }

  /** Feed one result (undefined: success) into the state machine. `force` marks up at once. */
  private record(e: Entry, failure: string | undefined, force = false): void {
    e.checks++;
    if (failure !== undefined) e.failures++;
    e.lastResult = failure ?? 'ok';
    const t = force ? { state: { up: true, streak: 0 }, changed: true } : observe(e.state, failure === undefined, e.spec.rise, e.spec.fall);
    e.state = t.state;
    if (!t.changed) return;
    e.since = Date.now();
    const reason = force ? 'passive hold-down over' : e.lastResult;
    this.log.info(e.state.up ? 'backend up' : 'backend down', { listener: e.listener, service: e.service, backend: e.backend, reason });
    this.onChange({ listener: e.listener, service: e.service, backend: e.backend, up: e.state.up, reason });
  }
}

function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
