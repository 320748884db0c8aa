import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INITIAL_HEALTH, observe, type HealthState } from '../../lb/health/state.ts';

// Ordered steps: each result, and the state and change expected after it (rise 2, fall 3).
const table: { desc: string; rise: number; fall: number; results: boolean[]; want: { up: boolean; changed: boolean }[] }[] = [
  {
    desc: 'observe takes a backend down after fall (3) failures in a row',
    rise: 2,
    fall: 3,
    results: [false, false, false],
    want: [
      { up: true, changed: false },
      { up: true, changed: false },
      { up: false, changed: true },
    ],
  },
  {
    desc: 'observe resets the failure streak on a success',
    rise: 2,
    fall: 3,
    results: [false, false, true, false, false, false],
    want: [
      { up: true, changed: false },
      { up: true, changed: false },
      { up: true, changed: false },
      { up: true, changed: false },
      { up: true, changed: false },
      { up: false, changed: true },
    ],
  },
  {
    desc: 'observe brings a backend back after rise (2) successes, and a failure in between resets it',
    rise: 2,
    fall: 1,
    results: [false, true, false, true, true],
    want: [
      { up: false, changed: true },
      { up: false, changed: false },
      { up: false, changed: false },
      { up: false, changed: false },
      { up: true, changed: true },
    ],
  },
  {
    desc: 'observe with rise 1 and fall 1 flips on every disagreeing result',
    rise: 1,
    fall: 1,
    results: [true, false, false, true],
    want: [
      { up: true, changed: false },
      { up: false, changed: true },
      { up: false, changed: false },
      { up: true, changed: true },
    ],
  },
];

for (const row of table) {
  test(row.desc, () => {
    let s: HealthState = INITIAL_HEALTH;
    row.results.forEach((ok, i) => {
      const t = observe(s, ok, row.rise, row.fall);
      assert.deepEqual({ up: t.state.up, changed: t.changed }, row.want[i], `step ${i}`);
      s = t.state;
    });
  });
}

test('observe: backends start healthy', () => {
  assert.equal(INITIAL_HEALTH.up, true);
});
