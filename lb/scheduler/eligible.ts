// Which backends a scheduler may pick: the one rule every scheduler shares.
//
// Eligible: up && !draining && weight > 0.
// Panic (Envoy's panic threshold, at 0%): when no backend is eligible but some non-draining
// backend with weight > 0 exists (every one of them is down), pick among those anyway:
// trying a backend the health checks doubt beats refusing every client.
// Never picked, panic or not: draining backends (removed from the configuration) and
// weight-0 backends (the operator asked for no new traffic).

import type { Backend, Scheduler } from './types.ts';

export function isEligible(b: Backend): boolean {
  return b.up && !b.draining && b.weight > 0;
}

/** In the set panic mode falls back to: configured with a weight, whatever its health. */
export function isPanicCandidate(b: Backend): boolean {
  return !b.draining && b.weight > 0;
}

export interface Eligibility {
  /** The backends to pick from, in input order. */
  readonly backends: readonly Backend[];
  /** True when `backends` are all down (panic mode). */
  readonly panic: boolean;
}

export function selectEligible(all: readonly Backend[]): Eligibility {
  const healthy = all.filter(isEligible);
  if (healthy.length > 0) return { backends: healthy, panic: false };
  const fallback = all.filter(isPanicCandidate);
  return { backends: fallback, panic: fallback.length > 0 };
}

/** Every Edgeport scheduler reports whether it is in panic mode (for status and metrics). */
export interface PanicState {
  /** True while every candidate backend is down and the scheduler picks among them anyway. */
  readonly panic: boolean;
}

/** Whether `s` is in panic mode; false for a scheduler that does not report it. */
export function inPanic(s: Scheduler): boolean {
  return (s as Partial<PanicState>).panic === true;
}
