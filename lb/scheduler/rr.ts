// rr: round robin over the eligible backends (eligible.ts), in configuration order.

import { selectEligible, type PanicState } from './eligible.ts';
import type { Backend, ClientKey, Scheduler } from './types.ts';

export class RoundRobinScheduler implements Scheduler, PanicState {
  #list: readonly Backend[] = [];
  #next = 0;
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
    // Keep the position: a health flap does not send the next client back to the first backend.
    if (this.#next >= this.#list.length) this.#next = 0;
  }

  pick(_client: ClientKey, tried?: ReadonlySet<Backend>): Backend | undefined {
    const list = this.#list;
    const n = list.length;
    for (let i = 0, idx = this.#next; i < n; i++, idx = idx + 1 === n ? 0 : idx + 1) {
      const b = list[idx]!;
      if (tried === undefined || !tried.has(b)) {
        this.#next = idx + 1 === n ? 0 : idx + 1;
        return b;
      }
    }
    return undefined;
  }
}
