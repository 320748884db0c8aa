// sh: source-IP hash on a Maglev table (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016), chosen over a points-on-a-ring hash after
// measuring both (scripts/sh-measure.ts): near-perfect balance, O(1) pick, and movement on
// a set change close to the ideal 1/n.
//
// Determinism: the table depends only on the (id, weight) pairs of the configured backends,
// sorted by id; no random numbers. The same client reaches the same backend after a restart,
// after a reload that keeps the set, and on every appliance.
//
// Health: the table is built from every configured backend (non-draining, weight > 0), up or
// down, and only rebuilt when ids or weights change. A client whose backend is down (or
// already tried) walks its own probe sequence through the table, (slot + k * step) mod M with
// a per-client step, to the next acceptable backend. So a backend going down moves exactly
// its own clients, spread over the others by weight, and they return when it is up again.
// Draining and weight-0 backends leave the table: that is a set change.
//
// Weights: Envoy's weighted Maglev fill: in round r a backend of weight w takes a slot when
// r * w has reached its target, which then grows by the largest weight, so slots follow
// weights.

import { hashClient, hashString } from './hash.ts';
import { isPanicCandidate, selectEligible, type PanicState } from './eligible.ts';
import type { Backend, ClientKey, Scheduler } from './types.ts';

/** Table size: a prime, so every per-backend (and per-client) step visits every slot. */
export const MAGLEV_TABLE_SIZE = 65537;

const SEED_OFFSET = 0x4d41474c; // "MAGL"
const SEED_SKIP = 0x45564a32;
const SEED_STEP = 0x5bd1e995;

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Build a Maglev lookup table: entry j is the index (into `ids`) of the backend owning slot j.
 * The result does not depend on the order of `ids` beyond the indices it returns.
 * Every backend gets at least one slot while ids.length <= size.
 */
export function buildMaglevTable(ids: readonly string[], weights: readonly number[], size = MAGLEV_TABLE_SIZE): Int32Array {
  const table = new Int32Array(size).fill(-1);
  const n = ids.length;
  if (n === 0) return table;
  const order = Array.from(ids.keys()).sort((a, b) => compareIds(ids[a]!, ids[b]!));
  const pos = new Float64Array(n);
  const skip = new Float64Array(n);
  const target = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    pos[i] = hashString(ids[i]!, SEED_OFFSET) % size;
    skip[i] = (hashString(ids[i]!, SEED_SKIP) % (size - 1)) + 1;
    if (weights[i]! > maxWeight) maxWeight = weights[i]!;
  }
  let filled = 0;
  for (let round = 1; filled < size; round++) {
    for (let o = 0; o < n && filled < size; o++) {
      const i = order[o]!;
      if (round * weights[i]! < target[i]!) continue;
      target[i]! += maxWeight;
      let c = pos[i]!;
      while (table[c] !== -1) c = (c + skip[i]!) % size;
      table[c] = i;
      pos[i] = (c + skip[i]!) % size;
      filled++;
    }
  }
  return table;
}

export class SourceHashScheduler implements Scheduler, PanicState {
  /** Backends in the table, sorted by id. */
  #members: Backend[] = [];
  /** The (id, weight) signature the table was built from. */
  #signature = '';
  #table: Int32Array = new Int32Array(0);
  /** 1 where #members[i] may be picked now (healthy, or panic mode). */
  #ok = new Uint8Array(0);
  /** The pickable backends (all in the table), to tell when `tried` covers them all. */
  #eligible: readonly Backend[] = [];
  #panic = false;

  constructor(backends: readonly Backend[]) {
    this.update(backends);
  }

  get panic(): boolean {
    return this.#panic;
  }

  update(backends: readonly Backend[]): void {
    const members = backends.filter(isPanicCandidate).sort((a, b) => compareIds(a.id, b.id));
    const signature = members.map((b) => `${b.id}*${b.weight}`).join(',');
    if (signature !== this.#signature) {
      this.#table = members.length === 0 ? new Int32Array(0) : buildMaglevTable(members.map((b) => b.id), members.map((b) => b.weight));
      this.#signature = signature;
    }
    this.#members = members;
    const e = selectEligible(backends);
    const pickable = new Set(e.backends);
    this.#ok = Uint8Array.from(members, (b) => (pickable.has(b) ? 1 : 0));
    this.#eligible = e.backends;
    this.#panic = e.panic;
  }

  pick(client: ClientKey, tried?: ReadonlySet<Backend>): Backend | undefined {
    const table = this.#table;
    const size = table.length;
    if (size === 0 || this.#eligible.length === 0) return undefined;
    const members = this.#members;
    const ok = this.#ok;
    const h = hashClient(client);
    let slot = h % size;
    let i = table[slot]!;
    if (ok[i] === 1 && (tried === undefined || !tried.has(members[i]!))) return members[i];
    if (tried !== undefined && !this.#anyUntried(tried)) return undefined;
    // This client's own walk: a step in [1, size - 1] visits every slot of the prime-sized table.
    // The step is fmix32(h ^ SEED_STEP), written out: a call's uint32 result may be boxed.
    let g = h ^ SEED_STEP;
    g = Math.imul(g ^ (g >>> 16), 0x85ebca6b);
    g = Math.imul(g ^ (g >>> 13), 0xc2b2ae35);
    g ^= g >>> 16;
    const step = ((g >>> 0) % (size - 1)) + 1;
    for (let k = 1; k < size; k++) {
      slot += step;
      if (slot >= size) slot -= size;
      i = table[slot]!;
      if (ok[i] === 1 && (tried === undefined || !tried.has(members[i]!))) return members[i];
    }
    return undefined;
  }

  #anyUntried(tried: ReadonlySet<Backend>): boolean {
    for (const b of this.#eligible) if (!tried.has(b)) return true;
    return false;
  }
}
