// One data plane: the listeners of this process, applied from a DesiredState as a diff,
// and the one sweep timer that enforces idle, half-closed, UDP session and drain bounds.
// Runs in-process or inside a worker process (worker.ts); nothing here assumes it is alone:
// every listener binds with reusePort so N data planes can share a VIP:port.

import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../core/log.ts';
import type { TcpEngine } from '../core/types.ts';
import { EpollLoop } from './epoll.ts';
import { TcpListener } from './tcp.ts';
import { EpollTcpListener } from './tcp-epoll.ts';
import { RawTcpListener } from './tcp-raw.ts';
import { UdpListener } from './udp.ts';
import type { ApplyResult, DataplaneHooks, DataplaneStats, DesiredState, ListenerSpec } from './types.ts';
import { uvBindings } from './uv.ts';

type Listener = TcpListener | RawTcpListener | EpollTcpListener | UdpListener;

interface Draining {
  l: Listener;
  deadline: number;
}

export class Dataplane {
  private readonly listeners = new Map<string, Listener>();
  private readonly draining = new Set<Draining>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private tickMs = 0;
  private stopped = false;
  /** The apply (or stop) running now: the next one waits for it. */
  private queue: Promise<unknown> = Promise.resolve();

  private readonly hooks: DataplaneHooks | undefined;
  /** The TCP engine in use: epoll unless asked for raw or net, or what was asked cannot run here (then raw, then net). */
  readonly engine: TcpEngine;

  constructor(opts: { log: Logger; hooks?: DataplaneHooks; engine?: TcpEngine }) {
    this.hooks = opts.hooks;
    this.log = opts.log;
    this.engine = opts.engine ?? 'epoll';
    if (this.engine === 'epoll' && EpollLoop.get() === undefined) {
      this.engine = 'raw';
      this.log.warn('epoll TCP engine unavailable here (it needs Linux x64, the main thread and koffi): using raw', { platform: process.platform, arch: process.arch });
    }
    if (this.engine === 'raw' && uvBindings() === undefined) {
      this.engine = 'net';
      this.log.warn('raw TCP engine unavailable on this Node (no tcp_wrap binding): using node:net', { node: process.version });
    }
  }

  /**
   * Applies run one at a time: two overlapping applies of a new listener would otherwise both
   * bind it (reusePort lets them) and orphan one socket that keeps accepting.
   */
  apply(state: DesiredState): Promise<ApplyResult> {
    const run = this.queue.then(() => this.applyNow(state));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(state: DesiredState): Promise<ApplyResult> {
    const result: ApplyResult = { up: [], failed: [] };
    // The last spec of a key wins; a key listed twice is bound once.
    const want = new Map(state.listeners.map((ls) => [ls.key, ls]));
    if (this.stopped) {
      for (const key of want.keys()) result.failed.push({ key, error: 'Cannot open the listener: the data plane is stopping' });
      return result;
    }
    for (const [key, l] of this.listeners) {
      if (!want.has(key)) {
        this.listeners.delete(key);
        this.retire(l);
      }
    }
    const binds: Promise<void>[] = [];
    for (const ls of want.values()) {
      const l = this.listeners.get(ls.key);
      if (l) {
        for (const b of l.update(ls)) this.log.info('backend draining', { listener: ls.key, backend: b.id, active: b.active });
        continue;
      }
      binds.push(this.open(ls, result));
    }
    await Promise.all(binds);
    for (const key of want.keys()) if (this.listeners.has(key)) result.up.push(key);
    this.schedule();
    return result;
  }

  private async open(ls: ListenerSpec, result: ApplyResult): Promise<void> {
    const l =
      ls.spec.protocol === 'UDP'
        ? new UdpListener(ls, this.log, Date.now(), this.hooks)
        : this.engine === 'epoll'
          ? new EpollTcpListener(ls, this.log, Date.now, this.hooks)
          : this.engine === 'raw'
            ? new RawTcpListener(ls, this.log, Date.now, this.hooks)
            : new TcpListener(ls, this.log, Date.now, this.hooks);
    try {
      await l.listen();
      this.listeners.set(ls.key, l);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      result.failed.push({ key: ls.key, error: e.message, code: e.code });
    }
  }

  /** Close a listener that is no longer wanted; its connections drain for at most timeouts.drain. */
  private retire(l: Listener): void {
    l.close();
    if (l.conns.size === 0) return;
    this.log.info('drain started', { listener: l.key, connections: l.conns.size });
    this.draining.add({ l, deadline: Date.now() + l.spec.timeouts.drain });
  }

  setBackendUp(key: string, backendId: string, up: boolean): boolean {
    return this.listeners.get(key)?.setBackendUp(backendId, up) ?? false;
  }

  stats(): DataplaneStats {
    const out: DataplaneStats = { listeners: [] };
    for (const l of this.listeners.values()) out.listeners.push(l.stats());
    return out;
  }

  /** Active connections and sessions, also of listeners that drain. */
  activeConnections(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.conns.size;
    for (const d of this.draining) n += d.l.conns.size;
    return n;
  }

  /**
   * Close every listener (new connections are refused), let established connections finish
   * for at most drainMs, then close what is left.
   */
  stop(drainMs: number): Promise<void> {
    if (this.stopped) return this.queue.then(() => undefined);
    this.stopped = true;
    // Let an apply in flight finish its binds first, so no listener it opens is left behind.
    const run = this.queue.then(() => this.stopNow(drainMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async stopNow(drainMs: number): Promise<void> {
    const all = [...this.listeners.values(), ...[...this.draining].map((d) => d.l)];
    this.listeners.clear();
    this.draining.clear();
    for (const l of all) l.close();
    const deadline = Date.now() + drainMs;
    while (all.some((l) => l.conns.size > 0) && Date.now() < deadline) {
      await sleep(25);
      for (const l of all) l.sweep(Date.now());
    }
    for (const l of all) l.destroyAll();
    // Destroyed sockets report 'close' on a later tick: wait (briefly) until they have.
    for (let i = 0; i < 40 && all.some((l) => l.conns.size > 0); i++) await sleep(25);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * One sweep timer for the whole data plane, its period a quarter of the shortest bound
   * (TCP connect timeouts and drains included): no timer per socket or session.
   */
  private schedule(): void {
    let shortest = 4000;
    for (const l of this.listeners.values()) {
      const t = l.spec.timeouts;
      shortest = Math.min(shortest, t.idle, t.udpSession, t.halfClosed ?? shortest, l.spec.protocol === 'TCP' ? t.connect : shortest);
    }
    for (const d of this.draining) shortest = Math.min(shortest, d.l.spec.timeouts.drain);
    const tick = Math.max(25, Math.min(1000, Math.floor(shortest / 4)));
    if (this.timer && tick === this.tickMs) return;
    clearInterval(this.timer);
    this.tickMs = tick;
    this.timer = setInterval(() => this.sweep(), tick);
    this.timer.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const l of this.listeners.values()) l.sweep(now);
    for (const d of this.draining) {
      d.l.sweep(now);
      if (d.l.conns.size === 0) {
        this.draining.delete(d);
        this.log.info('drain finished', { listener: d.l.key });
      } else if (now >= d.deadline) {
        this.log.warn('drain timed out: closing remaining connections', { listener: d.l.key, connections: d.l.conns.size });
        d.l.destroyAll();
        this.draining.delete(d);
      }
    }
  }
}
