// Lease logic as tables with a fake clock: acquire, renew, expiry, fencing by our own clock,
// hold-down, spread (lb/ha/lease.ts).

import assert from 'node:assert/strict';
import test from 'node:test';
import {
  candidates,
  decideLeader,
  decideVip,
  LeaseBook,
  memberLeaseName,
  preferredOf,
  UNHEALTHY_ANNOTATION,
  vipLeaseName,
  type Member,
  type VipDecisionInput,
} from '../../lb/ha/lease.ts';

const D = 1500;
const HOLD = 30_000;

function member(name: string, liveSince = 0, unhealthy: string[] = []): Member {
  return { name, liveSince, unhealthy: new Set(unhealthy) };
}

test('Lease names follow SPEC: edgeport-vip- and the address with . or : as -', () => {
  assert.equal(vipLeaseName('192.168.122.95'), 'edgeport-vip-192-168-122-95');
  assert.equal(vipLeaseName('2001:DB8::5'), 'edgeport-vip-2001-db8--5');
  assert.equal(memberLeaseName('Edge_1'), 'edgeport-member-edge-1');
});

test('rendezvous: deterministic, order-free, spreads VIPs, and a leaving member moves only its own VIPs', () => {
  const names = ['edge-a', 'edge-b', 'edge-c'];
  const vips = Array.from({ length: 300 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  const share = new Map<string, number>();
  const before = new Map<string, string>();
  for (const v of vips) {
    const p = preferredOf(v, names)!;
    assert.equal(preferredOf(v, [...names].reverse()), p, 'order of members does not matter');
    share.set(p, (share.get(p) ?? 0) + 1);
    before.set(v, p);
  }
  for (const n of names) {
    const s = share.get(n) ?? 0;
    assert.ok(s > 70 && s < 130, `${n} prefers ${s} of 300 VIPs`);
  }
  let moved = 0;
  for (const v of vips) {
    const p = preferredOf(v, ['edge-a', 'edge-c'])!;
    if (before.get(v) !== 'edge-b') assert.equal(p, before.get(v), `${v} stays where it was`);
    else moved++;
  }
  assert.equal(moved, share.get('edge-b'));
  assert.equal(preferredOf('10.0.0.1', []), undefined);
});

test('LeaseBook: expiry by our own clock since the last change, restart() gives owners a full duration', () => {
  const b = new LeaseBook(D);
  b.observe('l', { holder: 'a', renewTime: 't1' }, 1000);
  assert.deepEqual([b.state('l', 2000).holder, b.state('l', 2000).expired], ['a', false]);
  assert.equal(b.state('l', 2499).expired, false);
  assert.equal(b.state('l', 2500).expired, true, '1500 ms after we last saw a change');
  assert.equal(b.state('l', 2500).freeSince, 2500);
  b.observe('l', { holder: 'a', renewTime: 't1' }, 2400); // same renewTime again (a re-list): no change
  assert.equal(b.state('l', 2500).expired, true);
  b.observe('l', { holder: 'a', renewTime: 't2' }, 2450); // renewed
  assert.equal(b.state('l', 3000).expired, false);
  assert.equal(b.state('l', 3000).heldSince, 1000, 'held continuously since it was first seen');
  // API server away: no change seen for 30 s, then the watch re-lists.
  assert.equal(b.state('l', 33_000).expired, true);
  b.restart(33_000);
  assert.equal(b.state('l', 33_000).expired, false);
  assert.equal(b.state('l', 34_499).expired, false);
  assert.equal(b.state('l', 34_500).expired, true);
  // Released: free, remembers who let it go.
  b.observe('l', { holder: '', renewTime: 't3' }, 35_000);
  assert.deepEqual(b.state('l', 35_100), { holder: '', expired: false, freeSince: 35_000, seenAt: 35_000, heldSince: undefined, lastHolder: 'a' });
  // Never seen: free since the last sync.
  assert.equal(b.state('other', 40_000).freeSince, 33_000);
});

test('LeaseBook.members: live member Leases only, liveSince restarts after an expiry, unhealthy VIPs parsed', () => {
  const b = new LeaseBook(D);
  b.observe(memberLeaseName('a'), { holder: 'a', renewTime: '1', annotations: { [UNHEALTHY_ANNOTATION]: '10.0.0.1,10.0.0.2' } }, 0);
  b.observe(memberLeaseName('b'), { holder: 'b', renewTime: '1' }, 0);
  b.observe(memberLeaseName('c'), { holder: '', renewTime: '1' }, 0);
  b.observe(vipLeaseName('10.0.0.1'), { holder: 'a', renewTime: '1' }, 0);
  assert.deepEqual(b.members(100).map((m) => m.name), ['a', 'b']);
  assert.deepEqual([...b.members(100)[0]!.unhealthy], ['10.0.0.1', '10.0.0.2']);
  b.observe(memberLeaseName('a'), { holder: 'a', renewTime: '2' }, 1000);
  assert.deepEqual(b.members(2000).map((m) => m.name), ['a'], 'b expired at 1500');
  assert.equal(b.members(2000)[0]!.liveSince, 0);
  b.observe(memberLeaseName('b'), { holder: 'b', renewTime: '2' }, 5000); // b comes back
  assert.equal(b.members(5000).find((m) => m.name === 'b')!.liveSince, 5000, 'hold-down counts from its return');
});

function input(over: Partial<VipDecisionInput>): VipDecisionInput {
  return {
    vip: '10.0.0.1',
    self: 'a',
    now: 10_000,
    durationMs: D,
    holdDownMs: HOLD,
    lease: { holder: '', expired: false, freeSince: 10_000, seenAt: 10_000, heldSince: undefined, lastHolder: '' },
    members: [member('a'), member('b'), member('c')],
    healthy: true,
    synced: true,
    ...over,
  };
}

// A VIP whose preferred owner among a, b, c is each of them in turn.
function vipPreferring(who: string, among = ['a', 'b', 'c']): string {
  for (let i = 1; i < 1000; i++) if (preferredOf(`10.0.0.${i}`, among) === who) return `10.0.0.${i}`;
  throw new Error('no such VIP');
}

test('decideVip: a free Lease goes to the preferred owner at once, to others only after one lease duration', () => {
  const vip = vipPreferring('b');
  const free = (freeSince: number) => ({ holder: '', expired: false, freeSince, seenAt: freeSince, heldSince: undefined, lastHolder: '' });
  const rows: [string, Partial<VipDecisionInput>, string][] = [
    ['preferred, free now', { self: 'b', lease: free(10_000) }, 'acquire'],
    ['not preferred, free now', { self: 'a', lease: free(10_000) }, 'wait'],
    ['not preferred, free 1499 ms', { self: 'a', lease: free(8_501) }, 'wait'],
    ['not preferred, free 1500 ms', { self: 'a', lease: free(8_500) }, 'acquire'],
    ['preferred but the view is stale', { self: 'b', lease: free(0), synced: false }, 'wait'],
    ['preferred member b unhealthy: a healthy one is preferred', { self: 'b', lease: free(10_000), members: [member('a'), member('b', 0, [vip]), member('c')] }, 'wait'],
    ['unhealthy self never beats a healthy peer, even after a duration', { self: 'a', lease: free(0), healthy: false, members: [member('a', 0, [vip]), member('b'), member('c')] }, 'wait'],
    ['everyone unhealthy: served anyway by the preferred', { self: 'b', lease: free(10_000), healthy: false, members: [member('a', 0, [vip]), member('b', 0, [vip]), member('c', 0, [vip])] }, 'acquire'],
  ];
  for (const [name, over, want] of rows) assert.equal(decideVip(input({ vip, ...over })).action, want, name);
});

test('decideVip: an expired holder is no candidate, so the crash failover goes straight to the next preferred owner', () => {
  const vip = vipPreferring('a');
  const second = preferredOf(vip, ['b', 'c'])!;
  const other = second === 'b' ? 'c' : 'b';
  const expired = { holder: 'a', expired: true, freeSince: 10_000, seenAt: 8_500, heldSince: 0, lastHolder: 'a' };
  assert.equal(decideVip(input({ vip, self: second, lease: expired })).action, 'acquire');
  assert.equal(decideVip(input({ vip, self: other, lease: expired })).action, 'wait');
  const live = { ...expired, expired: false, freeSince: undefined };
  assert.equal(decideVip(input({ vip, self: second, lease: live })).action, 'wait', 'held and not expired: nobody else acquires');
  // The holder itself, its own Lease expired in its own view (its renewals fail), keeps it:
  // it does not hand over to the next preferred owner, that one takes it through the Lease.
  assert.equal(decideVip(input({ vip, self: 'a', lease: expired, now: 100_000 })).action, 'keep', 'the holder never excludes itself, even with its peers live past the hold-down');
});

test('decideVip: the holder keeps it; hands over only after the preferred owner is live for the hold-down; a failed handover restarts it', () => {
  const vip = vipPreferring('b');
  const heldByA = { holder: 'a', expired: false, freeSince: undefined, seenAt: 9_900, heldSince: 0, lastHolder: 'a' };
  const cases: [string, Partial<VipDecisionInput>, string][] = [
    ['b just came back', { members: [member('a'), member('b', 9_000), member('c')] }, 'keep'],
    ['b live 29.999 s', { now: 38_999, members: [member('a'), member('b', 9_000), member('c')] }, 'keep'],
    ['b live 30 s', { now: 39_000, members: [member('a'), member('b', 9_000), member('c')] }, 'release'],
    ['b live long, but a handover to it failed 10 s ago', { now: 100_000, handedOverAt: 90_000, members: [member('a'), member('b', 9_000), member('c')] }, 'keep'],
    ['b is gone', { members: [member('a'), member('c')] }, 'keep'],
    ['a cannot serve it, b can', { healthy: false, members: [member('a', 0, [vip]), member('b', 9_000), member('c')] }, 'release'],
    ['a cannot serve it, nobody else can either', { healthy: false, members: [member('a', 0, [vip]), member('b', 0, [vip]), member('c', 0, [vip])] }, 'keep'],
    ['a cannot serve it and is alone', { healthy: false, members: [member('a', 0, [vip])] }, 'keep'],
    ['a holds it even with a stale view (API server away)', { synced: false }, 'keep'],
  ];
  for (const [name, over, want] of cases) assert.equal(decideVip(input({ vip, lease: heldByA, ...over })).action, want, name);
  // The preferred owner that holds it keeps it.
  assert.equal(decideVip(input({ vip, self: 'b', lease: { ...heldByA, holder: 'b', lastHolder: 'b' } })).action, 'keep');
});

test('decideVip spreads: with every member live and the Leases free, each VIP has exactly one acquirer', () => {
  const members = [member('a'), member('b'), member('c')];
  const counts = new Map<string, number>();
  for (let i = 1; i <= 60; i++) {
    const vip = `192.168.1.${i}`;
    const takers = ['a', 'b', 'c'].filter((self) => decideVip(input({ vip, self, members })).action === 'acquire');
    assert.equal(takers.length, 1, `${vip}: ${takers.join(',')}`);
    counts.set(takers[0]!, (counts.get(takers[0]!) ?? 0) + 1);
  }
  for (const n of ['a', 'b', 'c']) assert.ok((counts.get(n) ?? 0) >= 10, `${n} takes ${counts.get(n)} of 60`);
});

test('candidates: healthy live members, or all of them when none is healthy', () => {
  assert.deepEqual(candidates('v', [member('a', 0, ['v']), member('b')]), ['b']);
  assert.deepEqual(candidates('v', [member('a', 0, ['v']), member('b', 0, ['v'])]), ['a', 'b']);
  assert.deepEqual(candidates('v', [member('a'), member('b')], 'a'), ['b']);
});

test('decideLeader: keep, wait while another holds it, acquire when free or expired and the view is current', () => {
  const st = (holder: string, expired = false) => ({ holder, expired, freeSince: undefined, seenAt: 0, heldSince: 0, lastHolder: holder });
  assert.equal(decideLeader(st('a'), 'a', true), 'keep');
  assert.equal(decideLeader(st('b'), 'a', true), 'wait');
  assert.equal(decideLeader(st('b', true), 'a', true), 'acquire');
  assert.equal(decideLeader(st(''), 'a', true), 'acquire');
  assert.equal(decideLeader(st(''), 'a', false), 'wait');
});
