// wrr: smooth weighted round robin, nginx's algorithm (ngx_http_upstream_get_peer):
// each pick adds every candidate's weight to its `current`, takes the largest `current`
// (first in configuration order on ties) and subtracts the candidates' total weight from it.
// Weights 5,1,1 give a a b a c a a: the heaviest backend never gets a burst.
// Backends in `tried` are left out of the round, as nginx skips tried peers.
// Every update() (set, weight or health change) restarts the cycle from zero.

import { selectEligible, type PanicState } from './eligible.ts';
import type { Backend, ClientKey, Scheduler } from './types.ts';

export class WeightedRoundRobinScheduler implements Scheduler, PanicState {
  #list: readonly Backend[] = [];
  #weights = new Float64Array(0);
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
    this.#weights = Float64Array.from(e.backends, (b) => b.weight);
    this.#current = new Float64Array(e.backends.length);
  }

  pick(_client: ClientKey, tried?: ReadonlySet<Backend>): Backend | undefined {
    const list = this.#list;
    const weights = this.#weights;
    const current = this.#current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < list.length; i++) {
      if (tried !== undefined && tried.has(list[i]!)) continue;
      current[i]! += weights[i]!;
      total += weights[i]!;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    if (best < 0) return undefined;
    current[best]! -= total;
    return list[best];
  }
}
