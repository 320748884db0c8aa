// Client affinity with a timeout (Kubernetes `sessionAffinity: ClientIP`, kube-proxy's
// semantics): a client IP keeps the backend it last reached until it has been idle for
// `timeoutMs`, even when the backend set changes meanwhile (a node joining moves nobody who
// is still active). Wraps any scheduler (sh by default, so a client's first pick is the same
// on every appliance and after a restart). A backend that is down, draining or already tried
// is not kept: the client is picked again. Pure; time is passed in.
//
// Memory: one entry per client seen within the timeout, at most `maxEntries`; past that the
// least recently seen entries go first (they fall back to the wrapped scheduler's pick).

import { isEligible, type PanicState } from './eligible.ts';
import type { Backend, ClientKey, Scheduler } from './types.ts';

interface Entry {
  backend: Backend;
  lastSeen: number;
}

export interface AffinityOptions {
  timeoutMs: number;
  maxEntries?: number;
  now?: () => number;
}

export class AffinityScheduler implements Scheduler, PanicState {
  private readonly inner: Scheduler & Partial<PanicState>;
  private readonly timeoutMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** In least-recently-seen order (a hit moves its entry to the end). */
  private readonly table = new Map<ClientKey, Entry>();
  private known = new Set<Backend>();

  constructor(inner: Scheduler, backends: readonly Backend[], opts: AffinityOptions) {
    this.inner = inner;
    this.known = new Set(backends);
    this.timeoutMs = opts.timeoutMs;
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.now = opts.now ?? (() => performance.now());
  }

  get panic(): boolean {
    return this.inner.panic === true;
  }

  /** Clients currently remembered. */
  get size(): number {
    return this.table.size;
  }

  pick(client: ClientKey, tried?: ReadonlySet<Backend>): Backend | undefined {
    const now = this.now();
    const e = this.table.get(client);
    if (e && now - e.lastSeen < this.timeoutMs && this.known.has(e.backend) && isEligible(e.backend) && !tried?.has(e.backend)) {
      this.table.delete(client);
      e.lastSeen = now;
      this.table.set(client, e);
      return e.backend;
    }
    const b = this.inner.pick(client, tried);
    if (b === undefined) return undefined;
    if (e) this.table.delete(client);
    this.table.set(client, { backend: b, lastSeen: now });
    if (this.table.size > this.maxEntries) this.evict(now);
    return b;
  }

  update(backends: readonly Backend[]): void {
    this.known = new Set(backends);
    this.inner.update(backends);
  }

  onOpen(b: Backend): void {
    this.inner.onOpen?.(b);
  }

  onClose(b: Backend): void {
    this.inner.onClose?.(b);
  }

  /** Drops expired entries, then the least recently seen ones down to maxEntries. */
  evict(now: number): void {
    for (const [k, e] of this.table) {
      if (now - e.lastSeen < this.timeoutMs && this.table.size <= this.maxEntries) break;
      this.table.delete(k);
    }
  }
}
