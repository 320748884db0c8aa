// The allocator against a naive reference model, over a seeded random run of assign,
// allocate, release and setPools. The model enumerates every pool address (the pools here
// are small) and follows the documented rules literally; after every step the allocator's
// answer, its assignments and its usage counts must equal the model's, no address may be
// held by two keys unless they share a sharing key with disjoint ports, and a repeated
// step must change nothing. Reproducible: EDGEPORT_ALLOC_SEED=<n> replays a run.

import { prng } from '../support/prng.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PoolSpec, Protocol } from '../../lb/core/types.ts';
import { formatIp, isBuggyIp, parseIp, parsePoolEntry } from '../../lb/ipam/address.ts';
import type { Family, IpRange } from '../../lb/ipam/address.ts';
import { Allocator, type AllocErrorCode, type ServicePort } from '../../lb/ipam/allocator.ts';

const SEED = Number(process.env['EDGEPORT_ALLOC_SEED'] ?? 0xa110c8);
const OPS = Number(process.env['EDGEPORT_ALLOC_OPS'] ?? 20000);


// --- pool configurations the run switches between ----------------------------------------------

function pool(name: string, addresses: string[], autoAssign: boolean, avoidBuggyIPs: boolean): PoolSpec {
  return { name, addresses, autoAssign, avoidBuggyIPs };
}

const VARIANTS: PoolSpec[][] = [
  [
    pool('p1', ['10.0.0.250-10.0.1.5'], true, true),
    pool('p2', ['10.1.0.0/29'], false, false),
    pool('p3', ['10.2.0.1-10.2.0.3', 'fd00::/125'], true, false),
  ],
  [
    // p1 shrinks, p3 goes, p4 takes some of p3's old addresses
    pool('p1', ['10.0.0.250-10.0.0.255'], true, true),
    pool('p2', ['10.1.0.0/29'], false, false),
    pool('p4', ['10.2.0.2-10.2.0.3', 'fd00::8/125'], true, false),
  ],
  [
    // nothing auto-assigns
    pool('p2', ['10.1.0.0/30'], false, false),
    pool('p3', ['fd00::/126'], false, true),
  ],
  [
    // p1 grows, buggy addresses allowed now
    pool('p1', ['10.0.0.250-10.0.1.10'], true, false),
    pool('p2', ['10.1.0.0/29'], true, false),
    pool('p3', ['10.2.0.1-10.2.0.3'], true, false),
  ],
];

const KEYS = Array.from({ length: 16 }, (_, i) => `k${i}`);
const SHARING = [undefined, undefined, '', 'A', 'A', 'B'];
const PORTS: ServicePort[] = [80, 443, 53].flatMap((port) => (['TCP', 'UDP'] as Protocol[]).map((protocol) => ({ port, protocol })));
const EXTRA_IPS = ['192.0.2.1', '192.0.2.2', '10.9.9.9', 'fd00::ff', '2001:db8::1', 'not-an-ip', '10.0.0.256'];
const POOL_NAMES = ['p1', 'p2', 'p3', 'p4', 'nope'];

// --- the reference model --------------------------------------------------------------------------

interface MHeld {
  ip: string;
  family: Family;
  value: bigint;
  ports: Set<string>;
  sk: string | undefined;
}

interface MPool {
  spec: PoolSpec;
  ranges: IpRange[];
  /** Every address, in pool order. */
  all: { family: Family; value: bigint; ip: string }[];
}

type Result = { ok: true; ip: string } | { ok: false; code: AllocErrorCode };

const pid = (p: ServicePort) => `${p.port}/${p.protocol}`;

class Model {
  pools: MPool[] = [];
  held = new Map<string, MHeld>();

  setPools(specs: PoolSpec[]): string[] {
    this.pools = specs.map((spec) => {
      const ranges = spec.addresses.map((a) => {
        const r = parsePoolEntry(a);
        assert.ok(r.ok);
        return r.range;
      });
      const all: MPool['all'] = [];
      for (const r of ranges) for (let v = r.first; v <= r.last; v++) all.push({ family: r.family, value: v, ip: formatIp(v, r.family) });
      return { spec, ranges, all };
    });
    return [...this.held].filter(([, h]) => !this.poolOf(h.ip)).map(([k]) => k).sort();
  }

  poolOf(ip: string): MPool | undefined {
    return this.pools.find((p) => p.all.some((a) => a.ip === ip));
  }

  holders(ip: string, except: string): [string, MHeld][] {
    return [...this.held].filter(([k, h]) => k !== except && h.ip === ip);
  }

  conflict(key: string, ip: string, ports: readonly ServicePort[], sk: string | undefined): AllocErrorCode | undefined {
    const others = this.holders(ip, key);
    if (others.length === 0) return undefined;
    if (others.some(([, h]) => !sk || h.sk !== sk)) return 'InUse';
    if (ports.some((p) => others.some(([, h]) => h.ports.has(pid(p))))) return 'PortClash';
    return undefined;
  }

  put(key: string, ip: string, ports: readonly ServicePort[], sk: string | undefined): Result {
    const a = parseIp(ip)!;
    this.held.set(key, { ip, family: a.family, value: a.value, ports: new Set(ports.map(pid)), sk });
    return { ok: true, ip };
  }

  assign(key: string, ipText: string, ports: readonly ServicePort[], o: { sharingKey?: string; requirePool?: boolean; pool?: string }): Result {
    const a = parseIp(ipText);
    if (!a) return { ok: false, code: 'InvalidAddress' };
    const ip = formatIp(a.value, a.family);
    if (o.pool !== undefined) {
      const p = this.pools.find((x) => x.spec.name === o.pool);
      if (!p) return { ok: false, code: 'NoSuchPool' };
      if (!p.all.some((x) => x.ip === ip)) return { ok: false, code: 'NotInPool' };
    } else if (o.requirePool && !this.poolOf(ip)) return { ok: false, code: 'NotInPool' };
    const sk = o.sharingKey || undefined;
    const c = this.conflict(key, ip, ports, sk);
    if (c) return { ok: false, code: c };
    return this.put(key, ip, ports, sk);
  }

  allocate(key: string, req: { pool?: string; ports: readonly ServicePort[]; sharingKey?: string; family?: Family }): Result {
    const sk = req.sharingKey || undefined;
    const cur = this.held.get(key);
    if (cur && (req.family === undefined || req.family === cur.family)) {
      const where = this.poolOf(cur.ip);
      if ((req.pool === undefined || !where || where.spec.name === req.pool) && !this.conflict(key, cur.ip, req.ports, sk)) {
        return this.put(key, cur.ip, req.ports, sk);
      }
    }
    let cands: MPool[];
    if (req.pool !== undefined) {
      const p = this.pools.find((x) => x.spec.name === req.pool);
      if (!p) return { ok: false, code: 'NoSuchPool' };
      cands = [p];
    } else {
      cands = this.pools.filter((p) => p.spec.autoAssign);
      if (cands.length === 0) return { ok: false, code: 'NoAutoAssignPool' };
    }
    const addrs = (p: MPool) => p.all.filter((a) => req.family === undefined || a.family === req.family);
    if (cands.every((p) => addrs(p).length === 0)) return { ok: false, code: 'FamilyMismatch' };
    if (sk) {
      for (const p of cands) {
        for (const a of addrs(p)) {
          if (this.poolOf(a.ip) !== p) continue;
          if (this.holders(a.ip, key).length > 0 && !this.conflict(key, a.ip, req.ports, sk)) return this.put(key, a.ip, req.ports, sk);
        }
      }
    }
    for (const p of cands) {
      for (const a of addrs(p)) {
        if (p.spec.avoidBuggyIPs && isBuggyIp(a.value, a.family)) continue;
        if (this.holders(a.ip, key).length === 0) return this.put(key, a.ip, req.ports, sk);
      }
    }
    return { ok: false, code: 'PoolExhausted' };
  }

  release(key: string): boolean {
    return this.held.delete(key);
  }

  usage(): { pool: string; size: bigint; used: bigint; free: bigint }[] {
    const ips = new Set([...this.held.values()].map((h) => h.ip));
    return this.pools.map((p) => {
      const usable = p.all.filter((a) => !(p.spec.avoidBuggyIPs && isBuggyIp(a.value, a.family)));
      const used = [...ips].filter((ip) => this.poolOf(ip) === p).length;
      return { pool: p.spec.name, size: BigInt(usable.length), used: BigInt(used), free: BigInt(usable.filter((a) => !ips.has(a.ip)).length) };
    });
  }

  snapshot(): { key: string; ip: string; ports: string[]; sk: string | undefined }[] {
    return [...this.held.keys()].sort().map((key) => {
      const h = this.held.get(key)!;
      return { key, ip: h.ip, ports: [...h.ports].sort(), sk: h.sk };
    });
  }
}

function snapshotOf(a: Allocator) {
  return a.snapshot().map((h) => ({ key: h.key, ip: h.ip, ports: h.ports.map(pid).sort(), sk: h.sharingKey }));
}

function brief(r: { ok: boolean; ip?: string; code?: AllocErrorCode }): Result {
  return r.ok ? { ok: true, ip: r.ip! } : { ok: false, code: r.code! };
}

// --- the run --------------------------------------------------------------------------------------

test(`Allocator agrees with a reference model over ${OPS} random operations (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const someIp = (m: Model): string => {
    if (rnd() < 0.15) return pick(EXTRA_IPS);
    const p = pick(m.pools);
    if (!p) return pick(EXTRA_IPS);
    const ip = pick(p.all).ip;
    return rnd() < 0.1 ? ip.toUpperCase() : ip; // other text forms of the same address
  };
  const somePorts = (): ServicePort[] => {
    const n = 1 + Math.floor(rnd() * 2);
    const out: ServicePort[] = [];
    for (let i = 0; i < n; i++) {
      const p = pick(PORTS);
      if (!out.some((x) => pid(x) === pid(p))) out.push(p);
    }
    return out;
  };

  let variant = 0;
  const model = new Model();
  model.setPools(VARIANTS[0]!);
  const alloc = new Allocator(VARIANTS[0]!);
  const counts: Record<string, number> = {};
  const history: string[] = [];
  let step = 0;
  let sharedSteps = 0;
  try {
    for (step = 0; step < OPS; step++) {
      const r = rnd();
      const key = pick(KEYS);
      let desc: string;
      let run: () => unknown;
      let expect: () => unknown;
      if (r < 0.01) {
        variant = (variant + 1 + Math.floor(rnd() * (VARIANTS.length - 1))) % VARIANTS.length;
        const v = VARIANTS[variant]!;
        desc = `setPools(variant ${variant})`;
        run = () => alloc.setPools(v).map((o) => o.key);
        expect = () => model.setPools(v);
      } else if (r < 0.25) {
        desc = `release(${key})`;
        run = () => alloc.release(key);
        expect = () => model.release(key);
      } else if (r < 0.55) {
        const ip = someIp(model);
        const ports = somePorts();
        const sharingKey = pick(SHARING);
        const rp = rnd();
        const o = {
          ...(sharingKey !== undefined ? { sharingKey } : {}),
          ...(rp < 0.4 ? { requirePool: true } : rp < 0.6 ? { requirePool: false } : {}),
          ...(rnd() < 0.15 ? { pool: pick(POOL_NAMES) } : {}),
        };
        desc = `assign(${key}, ${ip}, ${ports.map(pid).join(',')}, ${JSON.stringify(o)})`;
        run = () => brief(alloc.assign(key, ip, ports, o));
        expect = () => model.assign(key, ip, ports, o);
      } else {
        const ports = somePorts();
        const sharingKey = pick(SHARING);
        const poolName = rnd() < 0.5 ? undefined : pick(POOL_NAMES);
        const fr = rnd();
        const family: Family | undefined = fr < 0.7 ? undefined : fr < 0.85 ? 4 : 6;
        const req = {
          ports,
          ...(poolName !== undefined ? { pool: poolName } : {}),
          ...(sharingKey !== undefined ? { sharingKey } : {}),
          ...(family !== undefined ? { family } : {}),
        };
        desc = `allocate(${key}, ${JSON.stringify({ ...req, ports: ports.map(pid) })})`;
        run = () => brief(alloc.allocate(key, req));
        expect = () => model.allocate(key, req);
      }
      history.push(desc);
      if (history.length > 12) history.shift();

      const got = run();
      const want = expect();
      assert.deepEqual(got, want, 'result');
      const op = desc.slice(0, desc.indexOf('('));
      const res = got as { ok?: boolean; code?: string } | boolean | string[];
      const tag = typeof res === 'object' && !Array.isArray(res) ? (res.ok ? 'ok' : res.code!) : String(Array.isArray(res) ? 'done' : res);
      counts[`${op} ${tag}`] = (counts[`${op} ${tag}`] ?? 0) + 1;

      const snap = snapshotOf(alloc);
      assert.deepEqual(snap, model.snapshot(), 'assignments');
      assert.deepEqual(alloc.usage(), model.usage(), 'usage');

      // Never one address for two keys, unless one sharing key and disjoint ports.
      const byIp = new Map<string, typeof snap>();
      for (const h of snap) byIp.set(h.ip, [...(byIp.get(h.ip) ?? []), h]);
      for (const [ip, hs] of byIp) {
        assert.deepEqual(alloc.keysOf(ip).sort(), hs.map((h) => h.key), `keysOf(${ip})`);
        if (hs.length < 2) continue;
        sharedSteps++;
        assert.ok(hs.every((h) => h.sk && h.sk === hs[0]!.sk), `${ip} held by ${hs.map((h) => h.key).join(', ')} without one sharing key`);
        const all = hs.flatMap((h) => h.ports);
        assert.equal(new Set(all).size, all.length, `${ip} serves a port twice`);
      }
      for (const h of snap) assert.equal(alloc.ipOf(h.key), h.ip);

      // Idempotence: the same step again gives the same answer and changes nothing
      // (release: false the second time).
      if (op !== 'setPools' && rnd() < 0.25) {
        const again = run();
        assert.deepEqual(again, op === 'release' ? false : got, 'repeated step');
        assert.deepEqual(snapshotOf(alloc), snap, 'assignments after a repeated step');
      }
    }
  } catch (err) {
    const msg = (err as Error).message;
    throw new Error(
      `seed ${SEED} (replay: EDGEPORT_ALLOC_SEED=${SEED}), step ${step}, pool variant ${variant}\nlast steps:\n  ${history.join('\n  ')}\n${msg}`,
      { cause: err },
    );
  }
  // The run must have exercised every kind of outcome, or it tests less than it claims.
  for (const k of ['assign ok', 'assign InUse', 'assign PortClash', 'assign NotInPool', 'assign InvalidAddress', 'assign NoSuchPool', 'allocate ok', 'allocate PoolExhausted', 'allocate NoSuchPool', 'allocate NoAutoAssignPool', 'allocate FamilyMismatch', 'release true', 'release false', 'setPools done']) {
    assert.ok((counts[k] ?? 0) > 0, `seed ${SEED}: no "${k}" in the run: ${JSON.stringify(counts)}`);
  }
  assert.ok(sharedSteps > OPS / 100, `seed ${SEED}: an address was shared after only ${sharedSteps} steps`);
});
