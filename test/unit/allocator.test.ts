// The allocator as MetalLB tests its own: tables of ordered steps against one allocator,
// each step with what it does and what it must give. Then restoreStatic's stability.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PoolSpec, Protocol } from '../../lb/core/types.ts';
import { Allocator, type AllocErrorCode, type ServicePort } from '../../lb/ipam/allocator.ts';
import { restoreStatic, staticKey, type StaticServiceInput } from '../../lb/ipam/static.ts';

// --- helpers -------------------------------------------------------------------------------

function pool(name: string, addresses: string[], o: { autoAssign?: boolean; avoidBuggyIPs?: boolean } = {}): PoolSpec {
  return { name, addresses, autoAssign: o.autoAssign ?? true, avoidBuggyIPs: o.avoidBuggyIPs ?? false };
}

/** "80/TCP" -> {port: 80, protocol: 'TCP'} */
function ports(...specs: string[]): ServicePort[] {
  return specs.map((s) => {
    const [p, proto] = s.split('/');
    return { port: Number(p), protocol: (proto ?? 'TCP') as Protocol };
  });
}

interface Step {
  desc: string;
  /** assign: `ip` given; allocate: no `ip`; release; setPools. Default: assign when ip is set, else allocate. */
  op?: 'assign' | 'allocate' | 'release' | 'setPools';
  svcKey: string;
  ip?: string;
  pool?: string;
  family?: 4 | 6;
  requirePool?: boolean;
  ports?: string[];
  sharingKey?: string;
  pools?: PoolSpec[];
  /** The address the step must give (assign/allocate). */
  want?: string;
  wantErr?: AllocErrorCode;
  /** release: the boolean; setPools: the keys outside pools. */
  wantReleased?: boolean;
  wantOutside?: string[];
  /** After the step, the key holds this address (null: nothing). */
  after?: string | null;
}

function run(a: Allocator, steps: Step[]): void {
  for (const s of steps) {
    const op = s.op ?? (s.ip !== undefined ? 'assign' : 'allocate');
    const ctx = `step "${s.desc}"`;
    if (op === 'release') {
      assert.equal(a.release(s.svcKey), s.wantReleased ?? true, ctx);
    } else if (op === 'setPools') {
      const out = a.setPools(s.pools!);
      assert.deepEqual(out.map((o) => o.key), s.wantOutside ?? [], ctx);
    } else {
      const pp = ports(...(s.ports ?? ['80/TCP']));
      const r =
        op === 'assign'
          ? a.assign(s.svcKey, s.ip!, pp, {
              ...(s.sharingKey !== undefined ? { sharingKey: s.sharingKey } : {}),
              ...(s.requirePool !== undefined ? { requirePool: s.requirePool } : {}),
              ...(s.pool !== undefined ? { pool: s.pool } : {}),
            })
          : a.allocate(s.svcKey, {
              ports: pp,
              ...(s.pool !== undefined ? { pool: s.pool } : {}),
              ...(s.sharingKey !== undefined ? { sharingKey: s.sharingKey } : {}),
              ...(s.family !== undefined ? { family: s.family } : {}),
            });
      if (s.wantErr) {
        assert.equal(r.ok, false, `${ctx}: want ${s.wantErr}, got ${JSON.stringify(r)}`);
        if (!r.ok) {
          assert.equal(r.code, s.wantErr, `${ctx}: ${r.message}`);
          assert.match(r.message, /^Cannot /, `${ctx}: message starts with the action`);
          assert.ok(r.message.includes(`"${s.svcKey}"`), `${ctx}: message quotes the key: ${r.message}`);
        }
      } else {
        assert.ok(r.ok, `${ctx}: ${r.ok ? '' : `${r.code}: ${r.message}`}`);
        if (s.want !== undefined) assert.equal(r.ip, s.want, ctx);
      }
    }
    if (s.after !== undefined) assert.equal(a.ipOf(s.svcKey) ?? null, s.after, `${ctx}: afterwards`);
    checkInvariants(a, ctx);
  }
}

/** No address is held by two keys unless they share a sharing key and no port/protocol pair. */
function checkInvariants(a: Allocator, ctx: string): void {
  const byIp = new Map<string, ReturnType<Allocator['snapshot']>>();
  for (const h of a.snapshot()) byIp.set(h.ip, [...(byIp.get(h.ip) ?? []), h]);
  for (const [ip, hs] of byIp) {
    assert.deepEqual([...a.keysOf(ip)].sort(), hs.map((h) => h.key), `${ctx}: keysOf(${ip})`);
    if (hs.length < 2) continue;
    const seen = new Set<string>();
    for (const h of hs) {
      assert.ok(h.sharingKey && h.sharingKey === hs[0]!.sharingKey, `${ctx}: ${ip} held by ${hs.map((x) => x.key).join(', ')} without one sharing key`);
      for (const p of h.ports) {
        const id = `${p.port}/${p.protocol}`;
        assert.ok(!seen.has(id), `${ctx}: ${ip} serves ${id} twice`);
        seen.add(id);
      }
    }
  }
}

const DEFAULT = pool('default', ['192.168.122.90-192.168.122.100']);
const RESERVED = pool('reserved', ['10.20.0.0/28'], { autoAssign: false });

// --- tables --------------------------------------------------------------------------------

describe('Allocator.assign', () => {
  test('assign checks pools, addresses and holders; failures leave the key as it was', () => {
    run(new Allocator([DEFAULT, RESERVED]), [
      { desc: 'assign in pool', svcKey: 's1', ip: '192.168.122.95', requirePool: true, want: '192.168.122.95' },
      { desc: 'same again is idempotent', svcKey: 's1', ip: '192.168.122.95', requirePool: true, want: '192.168.122.95', after: '192.168.122.95' },
      { desc: 'in use by another key, no sharing key', svcKey: 's2', ip: '192.168.122.95', wantErr: 'InUse', after: null },
      { desc: 'requested address outside every pool (Kubernetes)', svcKey: 's2', ip: '172.16.0.1', requirePool: true, wantErr: 'NotInPool', after: null },
      { desc: 'fixed address outside every pool (static)', svcKey: 's2', ip: '172.16.0.1', requirePool: false, want: '172.16.0.1' },
      { desc: 'not an address', svcKey: 's3', ip: '192.168.122.300', wantErr: 'InvalidAddress', after: null },
      { desc: 'not an address, key keeps its own', svcKey: 's2', ip: 'web', wantErr: 'InvalidAddress', after: '172.16.0.1' },
      { desc: 'in the named pool', svcKey: 's3', ip: '10.20.0.5', pool: 'reserved', want: '10.20.0.5' },
      { desc: 'not in the named pool', svcKey: 's4', ip: '192.168.122.96', pool: 'reserved', wantErr: 'NotInPool', after: null },
      { desc: 'named pool unknown', svcKey: 's4', ip: '192.168.122.96', pool: 'nope', wantErr: 'NoSuchPool', after: null },
      { desc: 'non-autoAssign pool may be requested', svcKey: 's4', ip: '10.20.0.6', requirePool: true, want: '10.20.0.6' },
      { desc: 'moving to a free address frees the old one', svcKey: 's4', ip: '192.168.122.96', want: '192.168.122.96' },
      { desc: 'the old one is free', svcKey: 's5', ip: '10.20.0.6', want: '10.20.0.6' },
      { desc: 'moving onto a taken address fails and keeps the old', svcKey: 's4', ip: '192.168.122.95', wantErr: 'InUse', after: '192.168.122.96' },
      { desc: 'IPv6 text is canonicalised', svcKey: 's6', ip: '2001:DB8:0:0::1', want: '2001:db8::1' },
      { desc: 'and seen as the same address', svcKey: 's7', ip: '2001:db8::0:1', wantErr: 'InUse' },
    ]);
  });

  test('a fixed address inside a pool is never allocated to anyone else', () => {
    run(new Allocator([pool('p', ['10.0.0.1-10.0.0.3'])]), [
      { desc: 'fixed in the pool', svcKey: 'static/dns', ip: '10.0.0.1', requirePool: false, want: '10.0.0.1' },
      { desc: 'allocation skips it', svcKey: 'a', want: '10.0.0.2' },
      { desc: 'next', svcKey: 'b', want: '10.0.0.3' },
      { desc: 'exhausted although static/dns has one port', svcKey: 'c', ports: ['53/UDP'], wantErr: 'PoolExhausted' },
      { desc: 'with a sharing key it still cannot share an unshared address', svcKey: 'c', sharingKey: 'x', wantErr: 'PoolExhausted' },
    ]);
  });
});

describe('Allocator sharing', () => {
  test('same sharing key and disjoint ports share; anything else does not', () => {
    run(new Allocator([DEFAULT]), [
      { desc: 'a takes .91 with key s1', svcKey: 'a', ip: '192.168.122.91', sharingKey: 's1', ports: ['80/TCP'], want: '192.168.122.91' },
      { desc: 'b shares with disjoint ports', svcKey: 'b', ip: '192.168.122.91', sharingKey: 's1', ports: ['443/TCP'], want: '192.168.122.91' },
      { desc: 'c clashes on 80/TCP', svcKey: 'c', ip: '192.168.122.91', sharingKey: 's1', ports: ['80/TCP'], wantErr: 'PortClash' },
      { desc: 'd: same port, other protocol', svcKey: 'd', ip: '192.168.122.91', sharingKey: 's1', ports: ['80/UDP'], want: '192.168.122.91' },
      { desc: 'e: other sharing key', svcKey: 'e', ip: '192.168.122.91', sharingKey: 's2', ports: ['22/TCP'], wantErr: 'InUse' },
      { desc: 'f: no sharing key', svcKey: 'f', ip: '192.168.122.91', ports: ['22/TCP'], wantErr: 'InUse' },
      { desc: 'f: empty sharing key is no sharing key', svcKey: 'f', ip: '192.168.122.91', sharingKey: '', ports: ['22/TCP'], wantErr: 'InUse' },
      { desc: 'g: allocate prefers the address s1 uses', svcKey: 'g', sharingKey: 's1', ports: ['8080/TCP'], want: '192.168.122.91' },
      { desc: 'h: allocate with a clash takes the lowest free', svcKey: 'h', sharingKey: 's1', ports: ['80/TCP'], want: '192.168.122.90' },
      { desc: 'i: allocate with s1 and a new port prefers the lowest shared (.90)', svcKey: 'i', sharingKey: 's1', ports: ['9000/TCP'], want: '192.168.122.90' },
      { desc: 'j: other sharing key gets a free address', svcKey: 'j', sharingKey: 's3', ports: ['8080/TCP'], want: '192.168.122.92' },
      { desc: 'b re-assigned with a clash keeps its address', svcKey: 'b', ip: '192.168.122.91', sharingKey: 's1', ports: ['80/TCP'], wantErr: 'PortClash', after: '192.168.122.91' },
      { desc: 'b: allocate with ports that clash now moves it', svcKey: 'b', sharingKey: 's1', ports: ['80/TCP', '8080/TCP'], want: '192.168.122.93' },
      { desc: 'a released', op: 'release', svcKey: 'a' },
      { desc: 'c now fits on .91', svcKey: 'c', ip: '192.168.122.91', sharingKey: 's1', ports: ['80/TCP'], want: '192.168.122.91' },
    ]);
  });

  test('an address stays shared until its last holder is released', () => {
    const a = new Allocator([pool('p', ['10.0.0.1-10.0.0.2'])]);
    run(a, [
      { desc: 'a', svcKey: 'a', sharingKey: 'k', ports: ['80/TCP'], want: '10.0.0.1' },
      { desc: 'b shares', svcKey: 'b', sharingKey: 'k', ports: ['443/TCP'], want: '10.0.0.1' },
      { desc: 'a gone', op: 'release', svcKey: 'a' },
      { desc: 'c (unshared) may not take it', svcKey: 'c', want: '10.0.0.2' },
      { desc: 'b gone', op: 'release', svcKey: 'b' },
      { desc: 'd gets it', svcKey: 'd', want: '10.0.0.1' },
    ]);
    assert.deepEqual(a.usage(), [{ pool: 'p', size: 2n, used: 2n, free: 0n }]);
  });
});

describe('Allocator.allocate', () => {
  test('lowest free, idempotent, exhaustion, release then reuse', () => {
    run(new Allocator([pool('small', ['10.0.0.1-10.0.0.3'])]), [
      { desc: 'a gets the lowest', svcKey: 'a', want: '10.0.0.1' },
      { desc: 'b next', svcKey: 'b', want: '10.0.0.2' },
      { desc: 'a again: same address', svcKey: 'a', want: '10.0.0.1' },
      { desc: 'a again naming its pool: same address', svcKey: 'a', pool: 'small', want: '10.0.0.1' },
      { desc: 'c', svcKey: 'c', want: '10.0.0.3' },
      { desc: 'd: exhausted', svcKey: 'd', wantErr: 'PoolExhausted', after: null },
      { desc: 'd: exhausted, named', svcKey: 'd', pool: 'small', wantErr: 'PoolExhausted' },
      { desc: 'release b', op: 'release', svcKey: 'b', wantReleased: true, after: null },
      { desc: 'release b again is fine', op: 'release', svcKey: 'b', wantReleased: false },
      { desc: 'release an unknown key is fine', op: 'release', svcKey: 'never', wantReleased: false },
      { desc: 'd gets b\'s address at once', svcKey: 'd', want: '10.0.0.2' },
      { desc: 'no IPv6 here', svcKey: 'e', family: 6, wantErr: 'FamilyMismatch' },
    ]);
  });

  test('avoidBuggyIPs skips .0 and .255; without it they are handed out', () => {
    const range = ['10.0.0.254-10.0.1.1'];
    run(new Allocator([pool('p', range, { avoidBuggyIPs: true })]), [
      { desc: 'a', svcKey: 'a', want: '10.0.0.254' },
      { desc: 'b skips .255 and .0', svcKey: 'b', want: '10.0.1.1' },
      { desc: 'c: exhausted', svcKey: 'c', wantErr: 'PoolExhausted' },
      { desc: 'a buggy address may still be requested', svcKey: 'c', ip: '10.0.0.255', requirePool: true, want: '10.0.0.255' },
    ]);
    run(new Allocator([pool('p', range)]), [
      { desc: 'a', svcKey: 'a', want: '10.0.0.254' },
      { desc: 'b', svcKey: 'b', want: '10.0.0.255' },
      { desc: 'c', svcKey: 'c', want: '10.0.1.0' },
      { desc: 'd', svcKey: 'd', want: '10.0.1.1' },
    ]);
    const a = new Allocator([pool('p', range, { avoidBuggyIPs: true })]);
    run(a, [{ desc: 'fixed .0', svcKey: 'x', ip: '10.0.1.0', want: '10.0.1.0' }]);
    assert.deepEqual(a.usage(), [{ pool: 'p', size: 2n, used: 1n, free: 2n }], 'a held .0 is used but takes nothing usable');
  });

  test('autoAssign: false pools serve only when named; pools in configuration order', () => {
    run(new Allocator([RESERVED]), [
      { desc: 'no pool named, no autoAssign pool', svcKey: 'a', wantErr: 'NoAutoAssignPool' },
      { desc: 'named', svcKey: 'a', pool: 'reserved', want: '10.20.0.0' },
      { desc: 'unknown pool', svcKey: 'b', pool: 'nope', wantErr: 'NoSuchPool' },
    ]);
    const first = pool('first', ['10.0.0.1-10.0.0.1']);
    const second = pool('second', ['10.0.1.1-10.0.1.1']);
    run(new Allocator([RESERVED, first, second]), [
      { desc: 'first autoAssign pool first', svcKey: 'a', want: '10.0.0.1' },
      { desc: 'then the next', svcKey: 'b', want: '10.0.1.1' },
      { desc: 'all autoAssign pools exhausted, reserved still free', svcKey: 'c', wantErr: 'PoolExhausted' },
      { desc: 'named, a holds 10.0.0.1 in another pool: moves', svcKey: 'a', pool: 'reserved', want: '10.20.0.0' },
      { desc: 'its old address is free', svcKey: 'c', want: '10.0.0.1' },
      { desc: 'no pool named: a keeps its address in a non-autoAssign pool', svcKey: 'a', want: '10.20.0.0' },
    ]);
  });

  test('ranges are tried in configuration order, and ports/sharing are updated on an idempotent call', () => {
    const a = new Allocator([pool('p', ['10.0.0.9-10.0.0.10', '10.0.0.1-10.0.0.2'])]);
    run(a, [
      { desc: 'first range first', svcKey: 'a', want: '10.0.0.9' },
      { desc: 'then', svcKey: 'b', want: '10.0.0.10' },
      { desc: 'then the second range', svcKey: 'c', want: '10.0.0.1' },
      { desc: 'b again with other ports and a sharing key', svcKey: 'b', ports: ['53/UDP'], sharingKey: 'k', want: '10.0.0.10' },
    ]);
    assert.deepEqual(a.snapshot().find((h) => h.key === 'b'), { key: 'b', ip: '10.0.0.10', ports: [{ port: 53, protocol: 'UDP' }], sharingKey: 'k' });
  });
});

describe('Allocator.setPools', () => {
  test('a shrunk pool keeps every assignment and reports the ones outside', () => {
    const a = new Allocator([pool('p', ['10.0.0.1-10.0.0.4'])]);
    run(a, [
      { desc: 'a', svcKey: 'a', want: '10.0.0.1' },
      { desc: 'b', svcKey: 'b', want: '10.0.0.2' },
      { desc: 'c', svcKey: 'c', want: '10.0.0.3' },
      { desc: 'fixed outside pools', svcKey: 'static/x', ip: '172.16.0.1', want: '172.16.0.1' },
      { desc: 'shrink', op: 'setPools', svcKey: '', pools: [pool('p', ['10.0.0.1-10.0.0.1']), pool('q', ['10.0.0.3-10.0.0.4'], { autoAssign: false })], wantOutside: ['b', 'static/x'] },
      { desc: 'b keeps its address outside pools', svcKey: 'b', pool: 'p', want: '10.0.0.2', after: '10.0.0.2' },
      { desc: 'c keeps its address (now in q) when no pool is named', svcKey: 'c', want: '10.0.0.3' },
      { desc: 'new key: p exhausted', svcKey: 'd', pool: 'p', wantErr: 'PoolExhausted' },
      { desc: 'new key: the address b holds is not handed out, even outside pools', svcKey: 'd', ip: '10.0.0.2', wantErr: 'InUse' },
      { desc: 'new key from q skips c', svcKey: 'd', pool: 'q', want: '10.0.0.4' },
      { desc: 'c asked for p now: p is exhausted', svcKey: 'c', pool: 'p', wantErr: 'PoolExhausted', after: '10.0.0.3' },
      { desc: 'grow back', op: 'setPools', svcKey: '', pools: [pool('p', ['10.0.0.1-10.0.0.4'])], wantOutside: ['static/x'] },
    ]);
    assert.deepEqual(a.usage(), [{ pool: 'p', size: 4n, used: 4n, free: 0n }]);
    assert.equal(a.poolOf('10.0.0.2'), 'p');
    assert.equal(a.poolOf('172.16.0.1'), undefined);
    assert.throws(() => a.setPools([pool('p', ['10.0.0.9-10.0.0.1'])]), TypeError);
    assert.throws(() => new Allocator([pool('p', ['10.0.0.1']), pool('p', ['10.0.0.2'])]), TypeError);
  });
});

describe('Allocator.usage', () => {
  test('counts per pool, arithmetically', () => {
    const a = new Allocator([
      pool('v4', ['10.0.0.0/24'], { avoidBuggyIPs: true }),
      pool('v6', ['2001:db8::/64']),
      pool('empty', ['10.1.0.0/30']),
    ]);
    run(a, [
      { desc: 'a', svcKey: 'a', pool: 'v4', want: '10.0.0.1' },
      { desc: 'b shares with a', svcKey: 'b', pool: 'v4', ip: '10.0.0.1', sharingKey: '', wantErr: 'InUse' },
      { desc: 'c', svcKey: 'c', pool: 'v6', want: '2001:db8::' },
      { desc: 'd', svcKey: 'd', pool: 'v6', want: '2001:db8::1' },
      { desc: 'outside', svcKey: 'e', ip: '192.0.2.1', want: '192.0.2.1' },
    ]);
    assert.deepEqual(a.usage(), [
      { pool: 'v4', size: 254n, used: 1n, free: 253n },
      { pool: 'v6', size: 1n << 64n, used: 2n, free: (1n << 64n) - 2n },
      { pool: 'empty', size: 4n, used: 0n, free: 4n },
    ]);
  });
});

describe('Allocator with IPv6', () => {
  test('allocates from a /64 without enumerating it', () => {
    const a = new Allocator([pool('v4', ['10.0.0.1-10.0.0.2']), pool('v6', ['2001:db8:0:1::/64'])]);
    run(a, [
      { desc: 'family 6 skips the IPv4 pool', svcKey: 'a', family: 6, want: '2001:db8:0:1::' },
      { desc: 'family 4', svcKey: 'b', family: 4, want: '10.0.0.1' },
      { desc: 'no family: pool order', svcKey: 'c', want: '10.0.0.2' },
      { desc: 'no family: v4 exhausted, then v6', svcKey: 'd', want: '2001:db8:0:1::1' },
      { desc: 'family 4: exhausted', svcKey: 'e', family: 4, wantErr: 'PoolExhausted' },
      { desc: 'a again with family 4: no IPv4 left, keeps nothing new', svcKey: 'a', family: 4, wantErr: 'PoolExhausted', after: '2001:db8:0:1::' },
      { desc: 'a requested near the end of the /64', svcKey: 'a', ip: '2001:db8:0:1:ffff:ffff:ffff:ffff', requirePool: true, want: '2001:db8:0:1:ffff:ffff:ffff:ffff' },
      { desc: 'the lowest is free again', svcKey: 'e', family: 6, want: '2001:db8:0:1::' },
    ]);
    const start = performance.now();
    for (let i = 0; i < 2000; i++) {
      const r = a.allocate(`k${i}`, { pool: 'v6', ports: ports('80/TCP') });
      assert.ok(r.ok);
    }
    const ms = performance.now() - start;
    assert.equal(a.ipOf('k1999'), '2001:db8:0:1::7d1');
    const u = a.usage().find((x) => x.pool === 'v6')!;
    assert.equal(u.used, 2003n);
    assert.equal(u.free, (1n << 64n) - 2003n);
    assert.ok(ms < 3000, `2000 allocations from a /64 took ${ms.toFixed(0)} ms`);
  });
});

// --- restoreStatic -------------------------------------------------------------------------

function svc(name: string, where: { pool?: string; address?: string }, ...p: string[]): StaticServiceInput {
  return { name, ...where, ports: ports(...(p.length ? p : ['80/TCP'])) };
}

const POOLS = [pool('default', ['192.168.122.90-192.168.122.100']), pool('other', ['10.9.0.1-10.9.0.9'], { autoAssign: false })];

function restoreFresh(services: StaticServiceInput[], saved: Record<string, string>) {
  return restoreStatic(new Allocator(POOLS), services, saved);
}

describe('restoreStatic', () => {
  test('fixed first, then saved, then new in configuration order', () => {
    const services = [svc('web', { pool: 'default' }), svc('api', { pool: 'default' }), svc('dns', { address: '192.168.122.90' }, '53/UDP'), svc('ext', { address: '203.0.113.7' })];
    const a = new Allocator(POOLS);
    const r = restoreStatic(a, services, {});
    assert.deepEqual(Object.fromEntries(r.vips), { dns: '192.168.122.90', ext: '203.0.113.7', web: '192.168.122.91', api: '192.168.122.92' });
    assert.deepEqual(r.allocations, { api: '192.168.122.92', web: '192.168.122.91' });
    assert.equal(r.changed, true);
    assert.deepEqual(r.problems, []);
    assert.equal(a.ipOf(staticKey('dns')), '192.168.122.90');
  });

  test('saved addresses survive reordering, additions and removals', () => {
    const base = [svc('a', { pool: 'default' }), svc('b', { pool: 'default' }), svc('c', { pool: 'default' })];
    const first = restoreFresh(base, {});
    const saved = first.allocations;
    assert.deepEqual(saved, { a: '192.168.122.90', b: '192.168.122.91', c: '192.168.122.92' });

    const reordered = restoreFresh([base[2]!, base[0]!, base[1]!], saved);
    assert.deepEqual(reordered.allocations, saved);
    assert.equal(reordered.changed, false);

    // A new service first in the file, and a fixed one outside the pool: nobody moves.
    const added = restoreFresh([svc('new', { pool: 'default' }), svc('fixed', { address: '198.51.100.1' }), ...base], saved);
    assert.deepEqual(added.allocations, { ...saved, new: '192.168.122.93' });
    assert.equal(added.changed, true);

    // b removed: a and c stay; a new service later may take b's old address.
    const removed = restoreFresh([base[2]!, base[0]!, svc('d', { pool: 'default' })], saved);
    assert.deepEqual(removed.allocations, { a: '192.168.122.90', c: '192.168.122.92', d: '192.168.122.91' });
    assert.deepEqual(removed.problems, []);

    // Every permutation gives the same addresses.
    const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for (const p of perms) {
      assert.deepEqual(restoreFresh(p.map((i) => base[i]!), saved).allocations, saved, `order ${p.join(',')}`);
    }
  });

  test('a saved address that is taken, in another pool or invalid is reported and replaced; one outside pools stays', () => {
    const saved = { web: '192.168.122.95', api: '192.168.122.96', db: '10.9.0.5', old: '172.16.0.9', bad: 'nope' };
    const r = restoreFresh(
      [
        svc('web', { pool: 'default' }),
        svc('fixed', { address: '192.168.122.95' }), // takes web's saved address
        svc('api', { pool: 'default' }),
        svc('db', { pool: 'default' }), // its pool was "other"
        svc('old', { pool: 'default' }), // its address left every pool
        svc('bad', { pool: 'default' }),
      ],
      saved,
    );
    assert.deepEqual(Object.fromEntries(r.vips), {
      fixed: '192.168.122.95',
      api: '192.168.122.96',
      old: '172.16.0.9',
      web: '192.168.122.90',
      db: '192.168.122.91',
      bad: '192.168.122.92',
    });
    assert.equal(r.changed, true);
    const text = r.problems.join('\n');
    assert.equal(r.problems.length, 4, text);
    assert.match(text, /service "web": cannot keep "192\.168\.122\.95".*in use by "static\/fixed"/);
    assert.match(text, /service "db" from pool "default": its address "10\.9\.0\.5" lies in pool "other"/);
    assert.match(text, /service "old" keeps "172\.16\.0\.9", which lies in no pool/);
    assert.match(text, /service "bad": its saved address "nope" is not an IP address/);
  });

  test('two services claiming one address: held beats saved, then name order; configuration order never matters', () => {
    const a1 = svc('a', { pool: 'default' });
    const b1 = svc('b', { pool: 'default' });
    for (const order of [[a1, b1], [b1, a1]]) {
      const r = restoreFresh(order, { a: '192.168.122.95', b: '192.168.122.95' });
      assert.deepEqual(r.allocations, { a: '192.168.122.95', b: '192.168.122.90' }, order.map((s) => s.name).join(','));
      assert.equal(r.problems.length, 1);
      assert.match(r.problems[0]!, /^Allocate a new address for service "b": cannot keep "192\.168\.122\.95"/);
      // On reload, b holds the address and a's saved entry is stale: b keeps it.
      const alloc = new Allocator(POOLS);
      assert.ok(alloc.assign(staticKey('b'), '192.168.122.95', ports('80/TCP')).ok);
      const r2 = restoreStatic(alloc, order, { a: '192.168.122.95' });
      assert.deepEqual(r2.allocations, { a: '192.168.122.90', b: '192.168.122.95' });
    }
  });

  test('fixed static addresses share when ports differ, and clash otherwise', () => {
    const r = restoreFresh([svc('web', { address: '192.168.122.99' }, '80/TCP'), svc('dns', { address: '192.168.122.99' }, '53/UDP'), svc('web2', { address: '192.168.122.99' }, '80/TCP')], {});
    assert.deepEqual(Object.fromEntries(r.vips), { web: '192.168.122.99', dns: '192.168.122.99' });
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!, /^Cannot serve service "web2".*"static\/web" already serves 80\/TCP/);
    // A pool service never lands on a fixed address, shared or not.
    const r2 = restoreFresh([svc('p', { pool: 'default' }), svc('f', { address: '192.168.122.90' })], {});
    assert.equal(r2.vips.get('p'), '192.168.122.91');
  });

  test('on reload the held addresses win and other keys stay', () => {
    const a = new Allocator(POOLS);
    const k8s = a.allocate('k8s/default/nginx', { ports: ports('80/TCP') });
    assert.ok(k8s.ok && k8s.ip === '192.168.122.90');
    const first = restoreStatic(a, [svc('a', { pool: 'default' }), svc('b', { pool: 'default' })], {});
    assert.deepEqual(first.allocations, { a: '192.168.122.91', b: '192.168.122.92' });
    // Reload: b removed, a new service c; saved (stale) says otherwise: held wins.
    const second = restoreStatic(a, [svc('c', { pool: 'default' }), svc('a', { pool: 'default' })], { a: '192.168.122.99' });
    assert.deepEqual(second.allocations, { a: '192.168.122.91', c: '192.168.122.92' });
    assert.equal(a.ipOf('k8s/default/nginx'), '192.168.122.90');
    assert.equal(a.ipOf(staticKey('b')), undefined);
    // A service changed from pool to fixed gives its pool address back.
    const third = restoreStatic(a, [svc('c', { address: '203.0.113.1' }), svc('a', { pool: 'default' })], second.allocations);
    assert.deepEqual(third.allocations, { a: '192.168.122.91' });
    assert.equal(a.keysOf('192.168.122.92').length, 0);
  });
});
