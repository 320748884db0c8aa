// Builds a scheduler by name (rr | wrr | lc | sh); each algorithm lives in its own file.

import type { SchedulerName } from '../core/types.ts';
import type { PanicState } from './eligible.ts';
import { AffinityScheduler } from './affinity.ts';
import { LeastConnectionsScheduler } from './lc.ts';
import { RoundRobinScheduler } from './rr.ts';
import { SourceHashScheduler } from './sh.ts';
import type { Backend, Scheduler } from './types.ts';
import { WeightedRoundRobinScheduler } from './wrr.ts';

export type { Backend, ClientKey, Scheduler } from './types.ts';
export { inPanic, isEligible, isPanicCandidate, selectEligible, type Eligibility, type PanicState } from './eligible.ts';
export { RoundRobinScheduler } from './rr.ts';
export { WeightedRoundRobinScheduler } from './wrr.ts';
export { LeastConnectionsScheduler } from './lc.ts';
export { SourceHashScheduler, buildMaglevTable, MAGLEV_TABLE_SIZE } from './sh.ts';
export { AffinityScheduler } from './affinity.ts';

/** Every scheduler createScheduler builds reports panic mode. */
export type EdgeportScheduler = Scheduler & PanicState;

export const SCHEDULER_NAMES: readonly SchedulerName[] = ['rr', 'wrr', 'lc', 'sh'];

/**
 * `affinityMs`: clients keep the backend they last reached until idle that long
 * (sessionAffinity: ClientIP), around the named scheduler.
 */
export function createScheduler(name: SchedulerName, backends: readonly Backend[], opts: { affinityMs?: number | undefined } = {}): EdgeportScheduler {
  const s = createPlain(name, backends);
  return opts.affinityMs !== undefined && opts.affinityMs > 0 ? new AffinityScheduler(s, backends, { timeoutMs: opts.affinityMs }) : s;
}

function createPlain(name: SchedulerName, backends: readonly Backend[]): EdgeportScheduler {
  switch (name) {
    case 'rr':
      return new RoundRobinScheduler(backends);
    case 'wrr':
      return new WeightedRoundRobinScheduler(backends);
    case 'lc':
      return new LeastConnectionsScheduler(backends);
    case 'sh':
      return new SourceHashScheduler(backends);
    default:
      throw new RangeError(`Cannot create scheduler "${String(name satisfies never)}": expected rr, wrr, lc or sh`);
  }
}
