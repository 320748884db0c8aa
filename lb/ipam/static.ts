// Static services' VIPs: fixed addresses and stable pool allocations. Pure: the caller loads
// the saved allocations (state.ts), calls restoreStatic, and saves when `changed` says so.
//
// SPEC: "A pool address stays with its service when other services are added, removed or
// reordered, and across restarts". restoreStatic works in three passes so that the result
// for a service with an address already (saved, or held from before a reload) does not
// depend on the order of the services:
//   1. fixed addresses, in configuration order (they may lie outside pools; static services
//      may share one when their port/protocol pairs differ);
//   2. known pool addresses: those the allocator holds (a reload) first, then saved ones,
//      each group in service-name order;
//   3. new allocations, in configuration order, for the services still without an address.

import type { Allocator, ServicePort } from './allocator.ts';
import { canonicalIp } from './address.ts';

/** Allocator keys of static services: "static/<name>". */
export const STATIC_KEY_PREFIX = 'static/';

/**
 * The sharing key of fixed static addresses. Starts with NUL so that no Kubernetes
 * annotation value can equal it by accident.
 */
export const STATIC_SHARING_KEY = '\u0000edgeport-static';

export function staticKey(name: string): string {
  return STATIC_KEY_PREFIX + name;
}

export interface StaticServiceInput {
  name: string;
  /** A fixed VIP. */
  address?: string;
  /** A VIP allocated from this pool. */
  pool?: string;
  ports: readonly ServicePort[];
}

export interface RestoreResult {
  /** The VIP of every service that has one (fixed and pool). */
  vips: Map<string, string>;
  /** Pool allocations to keep in state.dir: service name -> address. */
  allocations: Record<string, string>;
  /** Warnings and errors, one a line, action first. */
  problems: string[];
  /** `allocations` differs from `saved`: the state file needs saving. */
  changed: boolean;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function byName(a: StaticServiceInput, b: StaticServiceInput): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Brings the allocator's static keys in line with `services` (in configuration order).
 * Usable at start (empty allocator, `saved` from loadState) and on reload (the allocator
 * already holds the static keys; what it holds wins over `saved`). Keys not starting with
 * STATIC_KEY_PREFIX (Kubernetes services) are left alone, and win over static services
 * that would need their addresses, except fixed addresses which nobody else may take.
 *
 * A known pool address is kept when it still lies in the service's pool and is free. One
 * that lies in no pool any more is kept too, with a warning (addresses never move on their
 * own, as for Kubernetes). One that lies in another pool (the service's `pool` changed), is
 * taken, or is invalid is reported and replaced by a new allocation.
 */
export function restoreStatic(allocator: Allocator, services: readonly StaticServiceInput[], saved: Readonly<Record<string, string>>): RestoreResult {
  const problems: string[] = [];
  const vips = new Map<string, string>();

  // What static keys hold now (a reload), then a clean slate for them: this function runs
  // synchronously, so nobody else sees the gap.
  const held = new Map<string, string>();
  for (const key of allocator.keys()) {
    if (!key.startsWith(STATIC_KEY_PREFIX)) continue;
    held.set(key.slice(STATIC_KEY_PREFIX.length), allocator.ipOf(key)!);
    allocator.release(key);
  }

  const seen = new Set<string>();
  const unique: StaticServiceInput[] = [];
  for (const s of services) {
    if (seen.has(s.name)) {
      problems.push(`Rename one of the services named ${q(s.name)}: only the first is served`);
      continue;
    }
    seen.add(s.name);
    unique.push(s);
  }

  // 1. Fixed addresses.
  for (const s of unique) {
    if (s.address === undefined) continue;
    const r = allocator.assign(staticKey(s.name), s.address, s.ports, { sharingKey: STATIC_SHARING_KEY });
    if (r.ok) vips.set(s.name, r.ip);
    else problems.push(`Cannot serve service ${q(s.name)} on its address: ${r.message}`);
  }

  // 2. Known pool addresses.
  const pooled = unique.filter((s) => s.address === undefined && s.pool !== undefined);
  for (const s of unique) {
    if (s.address === undefined && s.pool === undefined) problems.push(`Give service ${q(s.name)} an address or a pool: it has neither`);
  }
  const toAllocate = new Set<string>();
  // Addresses held now (served) before saved ones, each in name order: when two services
  // claim one address, the winner depends on neither the configuration order nor luck.
  const known = new Map<string, unknown>();
  for (const s of pooled) {
    if (held.has(s.name)) known.set(s.name, held.get(s.name));
    else if (Object.hasOwn(saved, s.name)) known.set(s.name, saved[s.name]);
  }
  const rank = (s: StaticServiceInput) => (held.has(s.name) ? 0 : 1);
  for (const s of [...pooled].sort((a, b) => rank(a) - rank(b) || byName(a, b))) {
    const pool = s.pool!;
    if (!known.has(s.name)) {
      toAllocate.add(s.name);
      continue;
    }
    const kept = known.get(s.name);
    const ip = typeof kept === 'string' ? canonicalIp(kept) : undefined;
    if (ip === undefined) {
      problems.push(`Allocate a new address for service ${q(s.name)}: its saved address ${JSON.stringify(kept) ?? 'undefined'} is not an IP address`);
      toAllocate.add(s.name);
      continue;
    }
    const where = allocator.poolOf(ip);
    if (where !== undefined && where !== pool) {
      problems.push(`Allocate a new address for service ${q(s.name)} from pool ${q(pool)}: its address ${q(ip)} lies in pool ${q(where)}`);
      toAllocate.add(s.name);
      continue;
    }
    const r = allocator.assign(staticKey(s.name), ip, s.ports);
    if (!r.ok) {
      problems.push(`Allocate a new address for service ${q(s.name)}: cannot keep ${q(ip)}: ${r.message}`);
      toAllocate.add(s.name);
      continue;
    }
    if (where === undefined) problems.push(`Check pool ${q(pool)}: service ${q(s.name)} keeps ${q(ip)}, which lies in no pool any more (addresses never move on their own)`);
    vips.set(s.name, r.ip);
  }

  // 3. New allocations, in configuration order.
  for (const s of pooled) {
    if (!toAllocate.has(s.name)) continue;
    const r = allocator.allocate(staticKey(s.name), { pool: s.pool!, ports: s.ports });
    if (r.ok) vips.set(s.name, r.ip);
    else problems.push(`Cannot serve service ${q(s.name)}: ${r.message}`);
  }

  const allocations: Record<string, string> = {};
  for (const s of [...pooled].sort(byName)) {
    const ip = vips.get(s.name);
    if (ip !== undefined) allocations[s.name] = ip;
  }
  const names = Object.keys(allocations);
  const changed = names.length !== Object.keys(saved).length || names.some((n) => saved[n] !== allocations[n]);
  return { vips, allocations, problems, changed };
}
