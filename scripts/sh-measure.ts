// Measures candidate tables for the sh scheduler: balance, movement on set changes, pick speed.
// Run: node scripts/sh-measure.ts [clients]   (default 100000)
//
// Candidates:
//   ch-pkg-40    the `consistent-hash` package (1.2.2) as shipped: its PJW string hash and
//                40 points per backend, the points made deterministic (hash of "id#i").
//   ch-mix-160   the same package with our client hash (FNV-1a + fmix32) and 160 points per
//                unit of weight on a 2^31 ring.
//   ch-mix-1000  the same with 1000 points per backend.
//   maglev       lb/scheduler/sh.ts's table (65537 slots), client hash FNV-1a + fmix32.
//
// Balance: each backend's share of the clients, reported as max/min and the standard
// deviation relative to the fair share 1/n. Movement: the fraction of clients whose backend
// changes when one backend joins (ideal 1/(n+1)) or leaves (ideal 1/n, averaged over every
// backend leaving); "extra" is the part of it that was not forced (clients of backends that
// stayed). Health: sh.ts itself, one backend down: the moved fraction and the extra moves.

import { createRequire } from 'node:module';
import { hashClient, hashString } from '../lb/scheduler/hash.ts';
import { buildMaglevTable, SourceHashScheduler } from '../lb/scheduler/sh.ts';
import type { Backend } from '../lb/scheduler/types.ts';

interface ConsistentHashRing {
  add(node: string, n?: number, points?: number[]): ConsistentHashRing;
  get(name: string): string | null;
  _hash?: (s: string) => number;
}
type ConsistentHashCtor = new (options?: { range?: number; weight?: number }) => ConsistentHashRing;
const ConsistentHash = createRequire(import.meta.url)('consistent-hash') as ConsistentHashCtor;

const CLIENTS = Number(process.argv[2] ?? 100_000);

function ip(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const sequential = Array.from({ length: CLIENTS }, (_, i) => ip(0x0a000001 + i)); // 10.0.0.1 ...
const rand = mulberry32(42);
const random = Array.from({ length: CLIENTS }, () => ip(rand()));

function backendIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.1.0.${11 + i}:30080`);
}

/** A lookup function built from a backend set. */
type Build = (ids: string[]) => (client: string) => string;

function chBuild(pointsPerBackend: number, range: number, ourHash: boolean): Build {
  return (ids) => {
    const ring = new ConsistentHash({ range, weight: pointsPerBackend });
    if (ourHash) {
      // The package computes (hash << 5) % range: keep 26 bits so the shift stays positive.
      ring._hash = (s: string) => hashClient(s) >>> 6;
    }
    for (const id of ids) {
      const points: number[] = [];
      for (let i = 0; i < pointsPerBackend; i++) points.push(hashString(`${id}#${i}`) % range);
      ring.add(id, pointsPerBackend, points);
    }
    return (client) => ring.get(client)!;
  };
}

const maglevBuild: Build = (ids) => {
  const table = buildMaglevTable(ids, ids.map(() => 1));
  return (client) => ids[table[hashClient(client) % table.length]!]!;
};

const candidates: [string, Build][] = [
  ['ch-pkg-40', chBuild(40, 100003, false)],
  ['ch-mix-160', chBuild(160, 2147483647, true)],
  ['ch-mix-1000', chBuild(1000, 2147483647, true)],
  ['maglev', maglevBuild],
];

function balance(lookup: (c: string) => string, ids: string[], clients: string[]): { maxMin: number; sd: number } {
  const counts = new Map(ids.map((id) => [id, 0]));
  for (const c of clients) counts.set(lookup(c), counts.get(lookup(c))! + 1);
  const v = [...counts.values()];
  const fair = clients.length / ids.length;
  const sd = Math.sqrt(v.reduce((s, x) => s + (x - fair) ** 2, 0) / v.length) / fair;
  return { maxMin: Math.max(...v) / Math.max(1, Math.min(...v)), sd };
}

function movement(build: Build, before: string[], after: string[], clients: string[]): { moved: number; extra: number } {
  const a = build(before);
  const b = build(after);
  const kept = new Set(after);
  let moved = 0;
  let extra = 0;
  for (const c of clients) {
    const x = a(c);
    const y = b(c);
    if (x !== y) {
      moved++;
      if (kept.has(x) && before.includes(y)) extra++;
    }
  }
  return { moved: moved / clients.length, extra: extra / clients.length };
}

function nsPerPick(lookup: (c: string) => string, clients: string[]): number {
  let sink = 0;
  for (let i = 0; i < clients.length; i++) sink += lookup(clients[i]!).length; // warm up
  const rounds = 5;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (let i = 0; i < clients.length; i++) sink += lookup(clients[i]!).length;
  const ns = Number(process.hrtime.bigint() - t0) / (rounds * clients.length);
  if (sink === -1) console.log(sink);
  return ns;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const rows: string[][] = [];
for (const [name, build] of candidates) {
  for (const n of [3, 5, 10]) {
    const ids = backendIds(n);
    const lookup = build(ids);
    const seq = balance(lookup, ids, sequential);
    const rnd = balance(lookup, ids, random);
    const add = movement(build, ids, backendIds(n + 1), random);
    let removed = 0;
    let removedExtra = 0;
    for (const gone of ids) {
      const m = movement(build, ids, ids.filter((id) => id !== gone), random);
      removed += m.moved / n;
      removedExtra += m.extra / n;
    }
    rows.push([
      name,
      String(n),
      seq.maxMin.toFixed(3),
      pct(seq.sd),
      rnd.maxMin.toFixed(3),
      pct(rnd.sd),
      `${pct(add.moved)} (${pct(1 / (n + 1))})`,
      pct(add.extra),
      `${pct(removed)} (${pct(1 / n)})`,
      pct(removedExtra),
      nsPerPick(lookup, random).toFixed(0),
    ]);
  }
}

function table(header: string[], body: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) console.log(line(r));
}

console.log(`sh candidates, ${CLIENTS} clients; sequential = 10.0.0.1 upward, random = seeded PRNG\n`);
table(
  ['table', 'n', 'seq max/min', 'seq sd', 'rnd max/min', 'rnd sd', 'moved on add (ideal)', 'add extra', 'moved on remove (ideal)', 'rm extra', 'ns/pick'],
  rows,
);

// sh.ts as the data plane uses it: one backend down (health), weights 3:1, pick speed with
// the Scheduler interface (no allocation without `tried`).
function backends(ids: string[], weights?: number[]): Backend[] {
  return ids.map((id, i) => {
    const [address, port] = [id.slice(0, id.lastIndexOf(':')), Number(id.slice(id.lastIndexOf(':') + 1))];
    return { id, address, port, weight: weights?.[i] ?? 1, up: true, draining: false, active: 0 };
  });
}
const health: string[][] = [];
for (const n of [3, 5, 10]) {
  const bs = backends(backendIds(n));
  const s = new SourceHashScheduler(bs);
  const before = random.map((c) => s.pick(c)!);
  bs[0]!.up = false;
  s.update(bs);
  let moved = 0;
  let extra = 0;
  const movedTo = new Map<Backend, number>();
  random.forEach((c, i) => {
    const b = s.pick(c)!;
    if (b !== before[i]) {
      moved++;
      if (before[i] !== bs[0]) extra++;
      movedTo.set(b, (movedTo.get(b) ?? 0) + 1);
    }
  });
  bs[0]!.up = true;
  s.update(bs);
  const back = random.every((c, i) => s.pick(c) === before[i]);
  const spread = [...movedTo.values()];
  health.push([
    String(n),
    `${pct(moved / CLIENTS)} (${pct(1 / n)})`,
    pct(extra / CLIENTS),
    (Math.max(...spread) / Math.min(...spread)).toFixed(3),
    String(back),
    nsPerPick((c) => s.pick(c)!.id, random).toFixed(0),
  ]);
}
console.log(`\nsh.ts (Maglev + per-client probe walk), backend 0 goes down then up\n`);
table(['n', 'moved (ideal)', 'extra', 'moved spread max/min', 'all back when up', 'ns/pick'], health);

const weighted = new SourceHashScheduler(backends(backendIds(2), [3, 1]));
const counts = new Map<string, number>();
for (const c of random) counts.set(weighted.pick(c)!.id, (counts.get(weighted.pick(c)!.id) ?? 0) + 1);
console.log(`\nsh.ts weights 3:1 -> ${[...counts.values()].map((v) => pct(v / CLIENTS)).join(' : ')}`);
