// The health state machine of one backend (HAProxy's rise/fall). Pure.
// Backends start healthy. `fall` consecutive failures take a healthy backend down; `rise`
// consecutive successes bring a down backend back. A result that agrees with the current
// state resets the opposite streak.

export interface HealthState {
  up: boolean;
  /** Consecutive results against the current state. */
  streak: number;
}

export const INITIAL_HEALTH: HealthState = Object.freeze({ up: true, streak: 0 });

export interface Transition {
  state: HealthState;
  /** The backend went up or down with this result. */
  changed: boolean;
}

export function observe(s: HealthState, ok: boolean, rise: number, fall: number): Transition {
  if (ok === s.up) return { state: s.streak === 0 ? s : { up: s.up, streak: 0 }, changed: false };
  const streak = s.streak + 1;
  if (streak >= (s.up ? fall : rise)) return { state: { up: !s.up, streak: 0 }, changed: true };
  return { state: { up: s.up, streak }, changed: false };
}
