// HaManager (lb/ha/manager.ts) with KubeLeases (lb/ha/coordination.ts) against the fake API
// server: several appliances in one process, each with its own client-node watch. Exactly one
// owner per VIP, spread by rendezvous hashing, clean handover, crash (a cut-off owner) and the
// API server going away, hold-down, health, the leader Lease, a missing namespace.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createLogger, silentLogger } from '../../lb/core/log.ts';
import type { HaSpec } from '../../lb/core/types.ts';
import { KubeLeases, type Coordination, type Lease, type LeaseWatchEvents } from '../../lb/ha/coordination.ts';
import { LEADER_LEASE, preferredOf, vipLeaseName } from '../../lb/ha/lease.ts';
import { HaManager } from '../../lb/ha/manager.ts';
import { makeKubeConfig } from '../../lb/k8s/client.ts';
import { FakeApiServer } from '../support/fake-apiserver.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { waitFor } from '../support/wait.ts';

const NS = 'edgeport-system';
const VIPS = ['10.9.0.1', '10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6', '10.9.0.7', '10.9.0.8', '10.9.0.9'];


/** A Coordination that can be cut off from the API server, as a route removed would. */
class Severable implements Coordination {
  private readonly inner: KubeLeases;
  severed = false;
  /** Only its writes fail: the watch still brings the peers' renewals (a route to the API server lost one way). */
  writesFail = false;
  constructor(inner: KubeLeases) {
    this.inner = inner;
  }
  private check(): void {
    if (this.severed || this.writesFail) throw Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' });
  }
  start(events: LeaseWatchEvents): void {
    this.inner.start({
      changed: (l) => {
        if (!this.severed) events.changed(l);
      },
      synced: (ok) => {
        if (!this.severed) events.synced(ok);
      },
    });
  }
  stop(): Promise<void> {
    return this.inner.stop();
  }
  async acquire(name: string, holder: string, d: number, prev: Lease | undefined, ann?: Record<string, string>): Promise<Lease> {
    this.check();
    return this.inner.acquire(name, holder, d, prev, ann);
  }
  async renew(l: Lease, d: number, ann?: Record<string, string>): Promise<Lease> {
    this.check();
    return this.inner.renew(l, d, ann);
  }
  async release(l: Lease): Promise<Lease> {
    this.check();
    return this.inner.release(l);
  }
}

interface Appliance {
  name: string;
  ha: HaManager;
  coord: Severable;
  owned(): string[];
  /** Every change of the owned set, with performance.now(). */
  changes: { at: number; owned: string[] }[];
  healthy: Map<string, boolean>;
  leader(): boolean;
}

interface Env {
  api: FakeApiServer;
  kubeconfig: string;
  start(name: string, cfg?: Partial<HaSpec>): Appliance;
  /** The holder of each VIP's Lease object in the API server. */
  holders(): Map<string, string>;
  /** VIP -> appliances serving it now. */
  servers(apps: Appliance[]): Map<string, string[]>;
}

const HA: HaSpec = { enabled: true, leaseNamespace: NS, leaseDuration: 1500, renewInterval: 300, holdDown: 3000 };

async function setup(t: TestContext, opts: { namespace?: boolean } = {}): Promise<Env> {
  const api = new FakeApiServer();
  const url = await api.start();
  const kubeconfig = writeKubeconfig(url);
  if (opts.namespace !== false) api.objects.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS }, status: { phase: 'Active' } });
  const apps: Appliance[] = [];
  t.after(async () => {
    for (const a of apps) await a.ha.stop().catch(() => {});
    await api.stop();
  });
  return {
    api,
    kubeconfig,
    start(name, cfg = {}) {
      const coord = new Severable(new KubeLeases({ kc: makeKubeConfig(kubeconfig), namespace: NS, backoffMs: 100, maxBackoffMs: 500 }));
      const healthy = new Map<string, boolean>();
      let owned: string[] = [];
      const changes: { at: number; owned: string[] }[] = [];
      const ha = new HaManager({
        coord,
        self: name,
        cfg: { ...HA, ...cfg },
        log: process.env.HA_DEBUG ? createLogger({ level: 'debug' }).child({ node: name }) : silentLogger,
        onOwned: (s) => {
          owned = [...s].sort();
          changes.push({ at: performance.now(), owned });
        },
        healthy: (v) => healthy.get(v) ?? true,
      });
      ha.start();
      ha.setVips(VIPS);
      const a: Appliance = { name, ha, coord, owned: () => owned, changes, healthy, leader: () => ha.isLeader() };
      apps.push(a);
      return a;
    },
    holders() {
      const m = new Map<string, string>();
      for (const l of api.objects.list('leases', NS)) m.set(l.metadata.name, l.spec?.holderIdentity ?? '');
      return m;
    },
    servers(list) {
      const m = new Map<string, string[]>();
      for (const v of VIPS) m.set(v, list.filter((a) => a.owned().includes(v)).map((a) => a.name));
      return m;
    },
  };
}

function settled(env: Env, apps: Appliance[]): boolean {
  const s = env.servers(apps);
  const h = env.holders();
  return VIPS.every((v) => s.get(v)!.length === 1 && h.get(vipLeaseName(v)) === s.get(v)![0]);
}

function spreadAsPreferred(env: Env, apps: Appliance[]): boolean {
  const names = apps.map((a) => a.name);
  const s = env.servers(apps);
  return VIPS.every((v) => s.get(v)!.length === 1 && s.get(v)![0] === preferredOf(v, names));
}

test('three appliances: exactly one serves each VIP, its Lease names it, and after the hold-down the VIPs spread as rendezvous hashing says', { timeout: 30_000 }, async (t) => {
  const env = await setup(t);
  const apps = [env.start('edge-a'), env.start('edge-b'), env.start('edge-c')];
  await waitFor('one owner per VIP', () => settled(env, apps));
  // Exactly one leader.
  await waitFor('one leader', () => apps.filter((a) => a.leader()).length === 1);
  assert.equal(env.holders().get(LEADER_LEASE), apps.find((a) => a.leader())!.name);
  await waitFor('the rendezvous spread', () => spreadAsPreferred(env, apps), 10_000);
  for (const a of apps) assert.ok(a.owned().length >= 1, `${a.name} serves ${a.owned().length}`);
  // Leases as SPEC writes them.
  const l = env.api.objects.get('leases', vipLeaseName(VIPS[0]!), NS)!;
  assert.equal(l.spec.leaseDurationSeconds, 2, '1500ms rounded up to whole seconds');
  assert.match(l.spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'a MicroTime');
  // Stable: nothing moves while all stay healthy (no flapping).
  const before = apps.map((a) => a.changes.length);
  await new Promise((r) => setTimeout(r, 2000));
  assert.deepEqual(apps.map((a) => a.changes.length), before);
});

test('clean handover: the owner stops (SIGTERM), releases its Leases, and peers serve each of its VIPs within 0.5 s', { timeout: 30_000 }, async (t) => {
  const env = await setup(t);
  const apps = [env.start('edge-a'), env.start('edge-b'), env.start('edge-c')];
  await waitFor('one owner per VIP', () => settled(env, apps));
  const [a, ...rest] = apps;
  const mine = a!.owned();
  assert.ok(mine.length > 0);
  const t0 = performance.now();
  await a!.ha.stop();
  for (const v of mine) assert.equal(env.holders().get(vipLeaseName(v)), '', `${v} released (holderIdentity cleared)`);
  await waitFor('peers serve every VIP', () => settled(env, rest), 3000);
  const gap = Math.max(...mine.map((v) => Math.min(...rest.flatMap((p) => p.changes.filter((c) => c.at >= t0 && c.owned.includes(v)).map((c) => c.at))))) - t0;
  assert.ok(gap < 500, `took over in ${gap.toFixed(0)} ms`);
  assert.equal(apps.filter((x) => x.leader() && x !== a).length, 1, 'a new leader');
});

test('crash: the owner cut off from the API server keeps serving until a peer takes the Lease after it expires (about 1.5 s), then yields on the peer announcement', { timeout: 30_000 }, async (t) => {
  const env = await setup(t);
  const apps = [env.start('edge-a'), env.start('edge-b')];
  await waitFor('one owner per VIP', () => settled(env, apps));
  const [a, b] = apps as [Appliance, Appliance];
  const mine = a.owned();
  assert.ok(mine.length > 0, 'edge-a serves something');
  const t0 = performance.now();
  a.coord.severed = true; // its writes fail, its watch goes quiet: as dead as far as the API server knows
  await waitFor('edge-b serves every VIP', () => VIPS.every((v) => b.owned().includes(v)), 4000);
  const took = Math.max(...mine.map((v) => b.changes.find((c) => c.at >= t0 && c.owned.includes(v))!.at)) - t0;
  assert.ok(took >= 1000 && took < 2000, `took over ${took.toFixed(0)} ms after the last renewal could happen`);
  // The cut-off owner still answers (it cannot know), until it sees another MAC announce the VIP.
  assert.deepEqual(a.owned(), mine);
  for (const v of mine) a.ha.foreignAnnouncement(v);
  assert.deepEqual(a.owned(), [], 'yielded at once: not renewed within the lease duration');
});

test('an owner whose writes fail while it still sees its peers keeps serving (no handover, no flap) until a peer holds the Lease', { timeout: 30_000 }, async (t) => {
  const env = await setup(t);
  const apps = [env.start('edge-a'), env.start('edge-b'), env.start('edge-c')];
  await waitFor('the spread (after the hold-down)', () => spreadAsPreferred(env, apps), 10_000);
  const a = apps.find((x) => x.owned().length > 0)!;
  const mine = a.owned();
  const mark = a.changes.length;
  const t0 = performance.now();
  a.coord.writesFail = true;
  await waitFor('the peers hold every VIP of the cut-off owner', () => mine.every((v) => !['', a.name].includes(env.holders().get(vipLeaseName(v)) ?? '')), 5000);
  const took = performance.now() - t0;
  await waitFor('the cut-off owner stops serving them', () => a.owned().length === 0, 2000);
  const after = a.changes.slice(mark);
  t.diagnostic(`peers held the Leases ${took.toFixed(0)} ms after the cut; the old owner's owned-set changes: ${JSON.stringify(after.map((c) => ({ at: Math.round(c.at - t0), owned: c.owned })))}`);
  for (let i = 0; i < after.length; i++) {
    const prev = i === 0 ? mine : after[i - 1]!.owned;
    assert.ok(after[i]!.owned.every((v) => prev.includes(v)), `never took a VIP again: ${JSON.stringify(after)}`);
  }
  assert.ok(after[0]!.at - t0 >= 1000, `kept serving until the Lease expired (first change ${(after[0]!.at - t0).toFixed(0)} ms after the cut)`);
});

test('a fresh owner does not yield to a foreign announcement: only one that could not renew does', { timeout: 30_000 }, async (t) => {
  const env = await setup(t);
  const a = env.start('edge-a');
  await waitFor('edge-a serves all', () => a.owned().length === VIPS.length);
  a.ha.foreignAnnouncement(VIPS[0]!);
  assert.equal(a.owned().length, VIPS.length);
});

test('the API server away for 5 s: no VIP moves, the owners keep serving, and renew first when it is back', { timeout: 40_000 }, async (t) => {
  const env = await setup(t);
  const apps = [env.start('edge-a'), env.start('edge-b'), env.start('edge-c')];
  await waitFor('the spread (after the hold-down)', () => spreadAsPreferred(env, apps), 10_000);
  const before = env.servers(apps);
  const counts = apps.map((a) => a.changes.length);
  await env.api.stop();
  await new Promise((r) => setTimeout(r, 5000));
  assert.deepEqual(env.servers(apps), before, 'nothing moved while away');
  await env.api.start();
  await new Promise((r) => setTimeout(r, 4000));
  assert.deepEqual(env.servers(apps), before, 'nothing moved after it came back');
  assert.deepEqual(apps.map((a) => a.changes.length), counts, 'no owned-set change at all');
  // The owners renewed: each Lease's renewTime moved after the return.
  const renewTimes = () => VIPS.map((v) => env.api.objects.get('leases', vipLeaseName(v), NS)!.spec.renewTime);
  const r1 = renewTimes();
  await new Promise((r) => setTimeout(r, 700));
  assert.ok(renewTimes().every((x, i) => x !== r1[i]), 'renewing again');
  assert.ok(settled(env, apps));
});

test('hold-down: a returning preferred owner gets its VIPs back only after ha.holdDown, through a clean handover', { timeout: 40_000 }, async (t) => {
  const env = await setup(t);
  const a = env.start('edge-a');
  const b = env.start('edge-b');
  await waitFor('the spread', () => spreadAsPreferred(env, [a, b]), 10_000);
  await b.ha.stop();
  await waitFor('edge-a serves all', () => a.owned().length === VIPS.length, 3000);
  const b2 = env.start('edge-b');
  const t0 = performance.now();
  const prefersB = VIPS.filter((v) => preferredOf(v, ['edge-a', 'edge-b']) === 'edge-b');
  assert.ok(prefersB.length > 0);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(b2.owned(), [], 'nothing moves back before the hold-down (3 s)');
  await waitFor('the VIPs back on edge-b', () => spreadAsPreferred(env, [a, b2]), 6000);
  const back = performance.now() - t0;
  assert.ok(back >= 3000, `moved back after ${back.toFixed(0)} ms`);
  // Each moved once: no flapping.
  for (const v of prefersB) assert.equal(b2.changes.filter((c) => c.owned.includes(v)).length > 0, true);
  assert.ok(settled(env, [a, b2]));
});

test('an appliance that cannot serve a VIP gives its Lease up to a healthy peer, and never takes one a healthy peer can serve', { timeout: 30_000 }, async (t) => {
  const env = await setup(t);
  const a = env.start('edge-a');
  const b = env.start('edge-b');
  await waitFor('the spread', () => spreadAsPreferred(env, [a, b]), 10_000);
  const v = a.owned()[0]!;
  a.healthy.set(v, false);
  await waitFor(`edge-b serves ${v}`, () => b.owned().includes(v) && !a.owned().includes(v), 3000);
  assert.match(env.api.objects.get('leases', 'edgeport-member-edge-a', NS)!.metadata.annotations['edgeport.io/unhealthy'], new RegExp(v.replace(/\./g, '\\.')));
  // Healthy again: it is edge-a's preferred VIP, so it comes back after the hold-down.
  a.healthy.set(v, true);
  await waitFor(`${v} back on edge-a`, () => a.owned().includes(v) && !b.owned().includes(v), 6000);
});

test('a missing ha.leaseNamespace: nothing is served until it exists, then the VIPs are taken', { timeout: 30_000 }, async (t) => {
  const env = await setup(t, { namespace: false });
  const a = env.start('edge-a');
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(a.owned(), []);
  assert.ok(env.api.requests.some((r) => r.method === 'POST' && r.path.endsWith('/leases') && r.status === 404), 'tried to create Leases, got 404');
  env.api.objects.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS }, status: { phase: 'Active' } });
  await waitFor('edge-a serves all', () => a.owned().length === VIPS.length, 5000);
});
