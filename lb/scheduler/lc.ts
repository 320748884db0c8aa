// lc: least active connections (UDP: sessions), weights respected, nginx's least_conn:
// pick the backend with the smallest active/weight; among backends tied at that load,
// smooth weighted round robin (as wrr.ts) decides.
//
// Why active/weight with a wrr tie-break rather than HAProxy's (active+1)/weight: with short
// connections every backend sits at 0 active, and (active+1)/weight would then send every
// connection to the heaviest backend, while a plain rotating tie-break would ignore the
// weights. The wrr tie-break spreads idle-time traffic by weight and equal loads evenly;
// under load the connection counts lead. Loads are compared by cross-multiplication
// (a1 * w2 < a2 * w1), exact for integer counts and weights.
//
// The data plane keeps `backend.active` itself; onOpen/onClose need no bookkeeping here.

import { selectEligible, type PanicState } from './eligible.ts';
import type { Backend, ClientKey, Scheduler } from './types.ts';

export class LeastConnectionsScheduler implements Scheduler, PanicState {
  #list: readonly Backend[] = [];
  #current = new Float64Array(0);
  #panic = false;

  constructor(backends: readonly Backend[]) {
    this.update(backends);
  }

  get panic(): boolean {
    return this.#panic;
  }

  update(backends: readonly Backend[]): void {
    const e = selectEligible(backends);
    this.#list = e.backends;
    this.#panic = e.panic;
    this.#current = new Float64Array(e.backends.length);
  }

  pick(_client: ClientKey, tried?: ReadonlySet<Backend>): Backend | undefined {
    const list = this.#list;
    // Pass 1: the least load, active/weight.
    let least: Backend | undefined;
    for (let i = 0; i < list.length; i++) {
      const b = list[i]!;
      if (tried !== undefined && tried.has(b)) continue;
      if (least === undefined || b.active * least.weight < least.active * b.weight) least = b;
    }
    if (least === undefined) return undefined;
    // Pass 2: smooth wrr among the backends at that load.
    const current = this.#current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < list.length; i++) {
      const b = list[i]!;
      if (tried !== undefined && tried.has(b)) continue;
      if (b.active * least.weight !== least.active * b.weight) continue;
      current[i]! += b.weight;
      total += b.weight;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    return list[best];
  }
}
