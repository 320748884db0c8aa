// The VIP allocator: which service key holds which address. Pure and in memory, like
// MetalLB's allocator: no I/O, no Kubernetes types, no clock. A service is an opaque string
// key ("static/web", "k8s/default/nginx"); the caller decides what a key means.
//
// Rules (SPEC "Kubernetes conventions", "Layer 2"):
// - Several keys hold one address only when all of them carry the same non-empty sharing
//   key and their port/protocol pairs do not overlap.
// - An address that lies in a pool is never handed out twice: `allocate` only returns
//   addresses no other key holds (or, with a sharing key, addresses it may share).
// - Addresses never move on their own: `setPools` keeps every assignment, even one whose
//   address no longer lies in any pool (`outsidePools` lists those for a warning).
// - Everything is idempotent: assigning or allocating again for a key that already holds a
//   suitable address returns it unchanged; releasing an unknown key is fine.
// - Expected failures are returned as values with a stable `code`, never thrown.
//   Only an invalid pool specification (which the config parser already refuses) throws.
//
// Pools are assumed not to overlap (the config parser refuses overlaps); were they to,
// an address belongs to the first pool, in configuration order, that contains it.

import type { PoolSpec, Protocol } from '../core/types.ts';
import { formatIp, isBuggyIp, parseIp, parsePoolEntry, poolSize, rangeSize } from './address.ts';
import type { Family, IpRange } from './address.ts';

/** One port of a service as the allocator sees it: only what sharing needs. */
export interface ServicePort {
  port: number;
  protocol: Protocol;
}

export type AllocErrorCode =
  /** The text is not an IPv4 or IPv6 address. */
  | 'InvalidAddress'
  /** The address lies in no pool (requirePool), or not in the pool that was named. */
  | 'NotInPool'
  /** Another key holds the address without the same sharing key. */
  | 'InUse'
  /** Another key with the same sharing key already serves one of the port/protocol pairs. */
  | 'PortClash'
  /** No pool has the name given. */
  | 'NoSuchPool'
  /** No pool was named and no pool has autoAssign. */
  | 'NoAutoAssignPool'
  /** The pool(s) have no address left for this request. */
  | 'PoolExhausted'
  /** The pool(s) have no address of the family asked for. */
  | 'FamilyMismatch';

export interface AllocFailure {
  ok: false;
  code: AllocErrorCode;
  /** User-facing: action first, values quoted. */
  message: string;
}

export type AssignResult = { ok: true; ip: string } | AllocFailure;
/** `pool` is the pool the address lies in; undefined for a kept address outside every pool. */
export type AllocateResult = { ok: true; ip: string; pool: string | undefined } | AllocFailure;

export interface AssignOptions {
  /** Keys with the same non-empty sharing key may share an address (disjoint ports). */
  sharingKey?: string;
  /** true: the address must lie in some pool (Kubernetes requested addresses). Default false. */
  requirePool?: boolean;
  /** The address must lie in this pool (implies requirePool). */
  pool?: string;
}

export interface AllocateRequest {
  /** Allocate from this pool; undefined: from the autoAssign pools, in configuration order. */
  pool?: string;
  ports: readonly ServicePort[];
  sharingKey?: string;
  /** Only addresses of this family; undefined: any (pools' ranges in order). */
  family?: Family;
}

export interface PoolUsage {
  pool: string;
  /** Usable addresses (without .0/.255 when avoidBuggyIPs). bigint: an IPv6 /64 is 2^64. */
  size: bigint;
  /** Distinct addresses of the pool held by some key (a fixed buggy address counts too). */
  used: bigint;
  /** Usable addresses nobody holds: what allocation can still hand out. */
  free: bigint;
}

export interface AssignmentView {
  key: string;
  ip: string;
  ports: ServicePort[];
  sharingKey: string | undefined;
}

interface Pool {
  spec: PoolSpec;
  ranges: IpRange[];
  size: bigint;
}

interface Held {
  key: string;
  ip: string;
  family: Family;
  value: bigint;
  slot: bigint;
  ports: ServicePort[];
  portSet: Set<string>;
  sharingKey: string | undefined;
}

/** One bigint per address across both families (IPv6 above 2^128), for map keys. */
const V6_OFFSET = 1n << 128n;
function slotOf(family: Family, value: bigint): bigint {
  return family === 4 ? value : value + V6_OFFSET;
}

function portId(p: ServicePort): string {
  return `${p.port}/${p.protocol}`;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function fail(code: AllocErrorCode, message: string): AllocFailure {
  return { ok: false, code, message };
}

function compilePools(pools: readonly PoolSpec[]): Pool[] {
  const out: Pool[] = [];
  const names = new Set<string>();
  for (const spec of pools) {
    if (names.has(spec.name)) throw new TypeError(`Cannot use pools: pool name ${q(spec.name)} appears twice`);
    names.add(spec.name);
    const ranges: IpRange[] = [];
    for (const entry of spec.addresses) {
      const r = parsePoolEntry(entry);
      if (!r.ok) throw new TypeError(`Cannot use pool ${q(spec.name)}: ${r.message}`);
      ranges.push(r.range);
    }
    out.push({ spec: { ...spec, addresses: [...spec.addresses] }, ranges, size: poolSize(ranges, spec.avoidBuggyIPs) });
  }
  return out;
}

export class Allocator {
  private pools: Pool[] = [];
  private readonly byKey = new Map<string, Held>();
  /** Address slot -> keys holding it, in assignment order. */
  private readonly bySlot = new Map<bigint, Held[]>();
  /**
   * Per range: no address below this one is free. Makes a run of allocations linear instead of
   * quadratic; lowered when an address is freed, dropped with the ranges on setPools.
   */
  private readonly lowHint = new Map<IpRange, bigint>();

  /** Throws TypeError on an invalid pool specification (the config parser refuses those). */
  constructor(pools: readonly PoolSpec[] = []) {
    this.pools = compilePools(pools);
  }

  /**
   * Replaces the pools (configuration reload). Every assignment stays, even one whose address
   * no longer lies in any pool. Returns those (`outsidePools()`), for a warning.
   */
  setPools(pools: readonly PoolSpec[]): { key: string; ip: string }[] {
    this.pools = compilePools(pools);
    this.lowHint.clear();
    return this.outsidePools();
  }

  /** The pool names, in configuration order. */
  poolNames(): string[] {
    return this.pools.map((p) => p.spec.name);
  }

  /**
   * Gives `ip` to `key` (a requested or fixed address). Idempotent: the same call again
   * changes nothing. A key holding another address moves to this one only on success; on
   * failure it keeps what it had.
   */
  assign(key: string, ip: string, ports: readonly ServicePort[], opts: AssignOptions = {}): AssignResult {
    const a = parseIp(ip.trim());
    if (!a) return fail('InvalidAddress', `Cannot assign ${q(ip)} to ${q(key)}: it is not an IPv4 or IPv6 address`);
    const text = formatIp(a.value, a.family);
    if (opts.pool !== undefined) {
      const named = this.pool(opts.pool);
      if (!named) return fail('NoSuchPool', `Cannot assign ${q(text)} to ${q(key)}: there is no pool ${q(opts.pool)} (pools: ${this.poolList()})`);
      if (!named.ranges.some((r) => r.family === a.family && r.first <= a.value && a.value <= r.last)) {
        return fail('NotInPool', `Cannot assign ${q(text)} to ${q(key)}: it does not lie in pool ${q(opts.pool)}`);
      }
    } else if (opts.requirePool && !this.poolOfValue(a.family, a.value)) {
      return fail('NotInPool', `Cannot assign ${q(text)} to ${q(key)}: it lies in no pool (pools: ${this.poolList()})`);
    }
    const sk = opts.sharingKey || undefined;
    const slot = slotOf(a.family, a.value);
    const clash = this.conflict(key, slot, text, ports, sk);
    if (clash) return clash;
    this.put(key, a.family, a.value, text, ports, sk);
    return { ok: true, ip: text };
  }

  /**
   * Gives `key` an address from a pool. Deterministic: with a sharing key, first an address
   * the same sharing key already uses where no port clashes; then the first free address in
   * the pool's address order (ranges as configured, ascending), skipping .0/.255 when the pool
   * avoids buggy IPs. With no pool named, the autoAssign pools are tried in configuration order.
   *
   * Idempotent: a key that already holds an address keeps it when the family matches, its
   * ports and sharing key still fit, and the address lies in the pool named (or no pool was
   * named, or it lies in no pool any more: addresses never move on their own). An address in
   * another pool than the one named is given up for a new one. To move a key off a fixed
   * address, release it first.
   */
  allocate(key: string, req: AllocateRequest): AllocateResult {
    const sk = req.sharingKey || undefined;
    const cur = this.byKey.get(key);
    if (cur && (req.family === undefined || cur.family === req.family)) {
      const where = this.poolOfValue(cur.family, cur.value);
      const inPlace = req.pool === undefined || where === undefined || where.spec.name === req.pool;
      if (inPlace && !this.conflict(key, cur.slot, cur.ip, req.ports, sk)) {
        this.put(key, cur.family, cur.value, cur.ip, req.ports, sk);
        return { ok: true, ip: cur.ip, pool: where?.spec.name };
      }
    }

    let candidates: Pool[];
    if (req.pool !== undefined) {
      const p = this.pool(req.pool);
      if (!p) return fail('NoSuchPool', `Cannot allocate an address for ${q(key)}: there is no pool ${q(req.pool)} (pools: ${this.poolList()})`);
      candidates = [p];
    } else {
      candidates = this.pools.filter((p) => p.spec.autoAssign);
      if (candidates.length === 0) {
        return fail('NoAutoAssignPool', `Cannot allocate an address for ${q(key)}: name a pool, or set autoAssign: true on one (no pool has it)`);
      }
    }
    const fam = req.family;
    const usable = candidates.filter((p) => p.ranges.some((r) => fam === undefined || r.family === fam));
    const poolsText = candidates.map((p) => q(p.spec.name)).join(', ');
    if (usable.length === 0) {
      return fail('FamilyMismatch', `Cannot allocate an IPv${fam} address for ${q(key)}: ${candidates.length === 1 ? 'pool' : 'pools'} ${poolsText} ${candidates.length === 1 ? 'has' : 'have'} none`);
    }

    if (sk) {
      const shared = this.findShared(key, usable, req.ports, sk, fam);
      if (shared) {
        this.put(key, shared.family, shared.value, shared.ip, req.ports, sk);
        return { ok: true, ip: shared.ip, pool: this.poolOfValue(shared.family, shared.value)?.spec.name };
      }
    }
    for (const p of usable) {
      for (const r of p.ranges) {
        if (fam !== undefined && r.family !== fam) continue;
        const v = this.firstFree(key, r, p.spec.avoidBuggyIPs);
        if (v !== undefined) {
          const text = formatIp(v, r.family);
          this.put(key, r.family, v, text, req.ports, sk);
          return { ok: true, ip: text, pool: p.spec.name };
        }
      }
    }
    const what = fam === undefined ? 'address' : `IPv${fam} address`;
    return fail(
      'PoolExhausted',
      usable.length === 1
        ? `Cannot allocate an address for ${q(key)}: pool ${q(usable[0]!.spec.name)} has no free ${what} left`
        : `Cannot allocate an address for ${q(key)}: the auto-assign pools ${usable.map((p) => q(p.spec.name)).join(', ')} have no free ${what} left`,
    );
  }

  /** Frees whatever `key` holds. Idempotent: true when it held an address, false otherwise. */
  release(key: string): boolean {
    const h = this.byKey.get(key);
    if (!h) return false;
    this.byKey.delete(key);
    const list = this.bySlot.get(h.slot)!.filter((x) => x.key !== key);
    if (list.length === 0) {
      this.bySlot.delete(h.slot);
      for (const [r, low] of this.lowHint) {
        if (r.family === h.family && r.first <= h.value && h.value < low) this.lowHint.set(r, h.value);
      }
    } else {
      this.bySlot.set(h.slot, list);
    }
    return true;
  }

  /** The address `key` holds, in canonical text. */
  ipOf(key: string): string | undefined {
    return this.byKey.get(key)?.ip;
  }

  /** The keys holding an address (any text form), in assignment order. */
  keysOf(ip: string): string[] {
    const a = parseIp(ip.trim());
    if (!a) return [];
    return (this.bySlot.get(slotOf(a.family, a.value)) ?? []).map((h) => h.key);
  }

  /** The pool an address (any text form) lies in; undefined when none or not an address. */
  poolOf(ip: string): string | undefined {
    const a = parseIp(ip.trim());
    return a && this.poolOfValue(a.family, a.value)?.spec.name;
  }

  /** Every key, sorted. */
  keys(): string[] {
    return [...this.byKey.keys()].sort();
  }

  /** Keys whose address lies in no pool (a pool shrank, or a fixed address outside pools). */
  outsidePools(): { key: string; ip: string }[] {
    const out: { key: string; ip: string }[] = [];
    for (const h of this.byKey.values()) if (!this.poolOfValue(h.family, h.value)) out.push({ key: h.key, ip: h.ip });
    return out.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  }

  /** Per pool, in configuration order. Counts arithmetically: no pool is enumerated. */
  usage(): PoolUsage[] {
    const used = new Map<Pool, bigint>();
    const usedUsable = new Map<Pool, bigint>();
    for (const list of this.bySlot.values()) {
      const h = list[0]!;
      const p = this.poolOfValue(h.family, h.value);
      if (!p) continue;
      used.set(p, (used.get(p) ?? 0n) + 1n);
      if (!(p.spec.avoidBuggyIPs && isBuggyIp(h.value, h.family))) usedUsable.set(p, (usedUsable.get(p) ?? 0n) + 1n);
    }
    return this.pools.map((p) => ({ pool: p.spec.name, size: p.size, used: used.get(p) ?? 0n, free: p.size - (usedUsable.get(p) ?? 0n) }));
  }

  /** Every assignment, sorted by key: for tests and status. */
  snapshot(): AssignmentView[] {
    return this.keys().map((k) => {
      const h = this.byKey.get(k)!;
      return { key: k, ip: h.ip, ports: h.ports.map((p) => ({ ...p })), sharingKey: h.sharingKey };
    });
  }

  // --- internals -----------------------------------------------------------------------------

  private pool(name: string): Pool | undefined {
    return this.pools.find((p) => p.spec.name === name);
  }

  private poolList(): string {
    return this.pools.length ? this.pools.map((p) => q(p.spec.name)).join(', ') : 'none';
  }

  private poolOfValue(family: Family, value: bigint): Pool | undefined {
    for (const p of this.pools) {
      for (const r of p.ranges) if (r.family === family && r.first <= value && value <= r.last) return p;
    }
    return undefined;
  }

  /** Why `key` may not use the address at `slot` with these ports and sharing key, if it may not. */
  private conflict(key: string, slot: bigint, ip: string, ports: readonly ServicePort[], sk: string | undefined): AllocFailure | undefined {
    const others = (this.bySlot.get(slot) ?? []).filter((h) => h.key !== key);
    if (others.length === 0) return undefined;
    for (const o of others) {
      if (!sk || o.sharingKey !== sk) {
        const why = !sk ? 'no sharing key was given' : o.sharingKey ? `its sharing key is ${q(o.sharingKey)}, not ${q(sk)}` : 'it allows no sharing';
        return fail('InUse', `Cannot assign ${q(ip)} to ${q(key)}: it is in use by ${q(o.key)} (${why})`);
      }
    }
    for (const p of ports) {
      const id = portId(p);
      const o = others.find((h) => h.portSet.has(id));
      if (o) return fail('PortClash', `Cannot assign ${q(ip)} to ${q(key)}: ${q(o.key)} already serves ${id} on it`);
    }
    return undefined;
  }

  /** The first shareable address in pool order (ranges as configured, ascending within). */
  private findShared(key: string, pools: Pool[], ports: readonly ServicePort[], sk: string, fam: Family | undefined): Held | undefined {
    const slots: Held[] = [];
    for (const list of this.bySlot.values()) {
      const h = list.find((x) => x.key !== key);
      if (h && h.sharingKey === sk && (fam === undefined || h.family === fam)) slots.push(h);
    }
    if (slots.length === 0) return undefined;
    for (const p of pools) {
      for (const r of p.ranges) {
        let best: Held | undefined;
        for (const h of slots) {
          if (h.family !== r.family || h.value < r.first || h.value > r.last) continue;
          if (best && best.value <= h.value) continue;
          if (this.poolOfValue(h.family, h.value) !== p) continue;
          if (this.conflict(key, h.slot, h.ip, ports, sk)) continue;
          best = h;
        }
        if (best) return best;
      }
    }
    return undefined;
  }

  /**
   * The lowest address of `r` that nobody but `key` holds. Walks only past held addresses (and
   * skipped .0/.255) above the range's hint, so the cost is bounded by the number held, not
   * the range's size.
   */
  private firstFree(key: string, r: IpRange, avoidBuggy: boolean): bigint | undefined {
    if (rangeSize(r, avoidBuggy) === 0n) return undefined;
    for (let v = this.lowHint.get(r) ?? r.first; v <= r.last; v++) {
      if (avoidBuggy && isBuggyIp(v, r.family)) continue;
      const holders = this.bySlot.get(slotOf(r.family, v));
      if (!holders) {
        this.lowHint.set(r, v);
        return v;
      }
      // Held by `key` alone: free for it (allocate keeps such an address before it gets here,
      // so this only matters for completeness; the hint stays below it).
      if (holders.every((h) => h.key === key)) return v;
    }
    this.lowHint.set(r, r.last + 1n);
    return undefined;
  }

  private put(key: string, family: Family, value: bigint, ip: string, ports: readonly ServicePort[], sk: string | undefined): void {
    this.release(key);
    const h: Held = {
      key,
      ip,
      family,
      value,
      slot: slotOf(family, value),
      ports: ports.map((p) => ({ port: p.port, protocol: p.protocol })),
      portSet: new Set(ports.map(portId)),
      sharingKey: sk,
    };
    this.byKey.set(key, h);
    const list = this.bySlot.get(h.slot);
    if (list) list.push(h);
    else this.bySlot.set(h.slot, [h]);
  }
}
