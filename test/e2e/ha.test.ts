// HA end to end: three real edgeport appliances in network namespaces on one bridge, the fake
// API server (Lease store) in a namespace of its own, a backend and a client (test/support/
// ha-lab.ts). Exactly one MAC answers ARP per VIP; kill -9 and SIGTERM of an owner, measured
// from the client as a new connection every 100 ms; the API server away for 30 s; an owner cut
// off from the API server alone.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encodeArp, type ArpPacket } from '../../lb/l2/arp.ts';
import { preferredOf } from '../../lb/ha/lease.ts';
import { ip, netnsSkipReason, nsExec } from '../support/netns.ts';
import { BIN } from '../support/proc.ts';
import { HaLab, killNamespace, wallNow, type Appliance, type Attempt } from '../support/ha-lab.ts';

const skip = netnsSkipReason();
let lab: HaLab;

before(async () => {
  if (skip) return;
  lab = await HaLab.create({ appliances: 3, vips: 4, subnet: `10.233.${100 + (process.pid % 50)}` });
  for (const a of lab.appliances) {
    lab.start(a);
    await lab.waitReady(a);
  }
});

after(async () => {
  await lab?.cleanup();
});

const names = () => lab.appliances.map((a) => a.name);

/** Every VIP's Lease held by its rendezvous choice among all appliances. */
async function spread(): Promise<Map<string, string>> {
  return lab.waitFor('the rendezvous spread', async () => {
    const h = await lab.holders();
    return lab.vips.every((v) => h.get(v) === preferredOf(v, names())) ? h : undefined;
  }, 20_000);
}

function ownerOf(h: Map<string, string>, vip: string): Appliance {
  return lab.appliances.find((a) => a.name === h.get(vip))!;
}

/** First attempt started after t0 that succeeded through another appliance than `old`. */
function firstServedAfter(attempts: Attempt[], t0: number, old: Appliance): Attempt | undefined {
  return attempts.filter((x) => x.start >= t0 - 2000 && x.end >= t0 && x.via && x.via !== old.addr).sort((a, b) => a.end - b.end)[0];
}

test('exactly one MAC answers ARP for each VIP, the VIPs spread over the appliances, and status and metrics agree', { skip, timeout: 60_000 }, async () => {
  const h = await spread();
  assert.equal(new Set(lab.vips.map((v) => h.get(v))).size, 3, `spread over ${[...new Set(h.values())].join(', ')}`);
  for (const vip of lab.vips) {
    const owner = ownerOf(h, vip);
    assert.deepEqual(await lab.arpers(vip), [owner.mac], `${vip}: only ${owner.name} answers`);
  }
  for (const a of lab.appliances) {
    const st = await lab.admin<{ services: { vip: string; owner: string; preferredOwner: string; leaseAgeMs: number }[] }>(a, '/status');
    const doc = st.body as { services: { vip: string; owner: string; preferredOwner: string; leaseAgeMs: number }[] };
    for (const s of doc.services) {
      assert.equal(s.owner, h.get(s.vip), `${a.name} sees the owner of ${s.vip}`);
      assert.equal(s.preferredOwner, preferredOf(s.vip, names()));
      assert.ok(s.leaseAgeMs >= 0);
    }
    const m = (await lab.admin<string>(a, '/metrics')).body as string;
    for (const vip of lab.vips) {
      const want = h.get(vip) === a.name ? 1 : 0;
      assert.match(m, new RegExp(`edgeport_vip_owned\\{vip="${vip.replace(/\./g, '\\.')}"\\} ${want}\\n`), `${a.name}: vip_owned ${vip} = ${want}`);
    }
  }
  // `edgeport status`: the OWNER column with the Lease's age.
  const table = await nsExec(lab.appliances[0]!.ns, BIN, ['status']);
  for (const vip of lab.vips) assert.match(table.stdout, new RegExp(`${vip.replace(/\./g, '\\.')}\\s+${h.get(vip)} \\d+s\\s`), table.stdout);
  // A SIGHUP never moves a VIP.
  const mark = lab.appliances.map((a) => a.out.length);
  for (const a of lab.appliances) a.child!.kill('SIGHUP');
  await lab.waitFor('every reload', () => lab.appliances.every((a, i) => /reload ok/.test(a.out.slice(mark[i]))));
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await lab.holders(), h);
  lab.appliances.forEach((a, i) => assert.doesNotMatch(a.out.slice(mark[i]), /VIP Lease given up|VIP released/, `${a.name} gave nothing up`));
});

test('kill -9 of the owner: new connections succeed through the new owner within 2 s, and the client neighbour entry shows its MAC', { skip, timeout: 90_000 }, async (t) => {
  const h = await spread();
  const vip = lab.vips[0]!;
  const old = ownerOf(h, vip);
  const loop = lab.connectLoop(vip);
  await new Promise((r) => setTimeout(r, 700));
  const t0 = wallNow();
  await killNamespace(old.ns);
  await lab.waitFor('a connection through the new owner', () => firstServedAfter(loop.attempts, t0, old), 5000);
  const attempts = await loop.stop();
  const first = firstServedAfter(attempts, t0, old)!;
  const gap = first.end - t0;
  assert.ok(attempts.filter((x) => x.end < t0).every((x) => x.via === old.addr), 'before: served by the old owner');
  t.diagnostic(`crash failover: ${gap.toFixed(0)} ms`);
  assert.ok(gap < 2000, `crash failover took ${gap.toFixed(0)} ms`);
  const neigh = await lab.neighbour(vip);
  const now = lab.byAddr(first.via)!;
  assert.equal(neigh, now.mac, `the client's neighbour entry moved to ${now.name}`);
  assert.equal((await lab.holders()).get(vip), now.name);
  // Back: the old owner restarts and, after the hold-down, gets its VIPs again.
  lab.start(old);
  await lab.waitReady(old);
});

test('SIGTERM of the owner: new connections succeed through the new owner within 0.5 s', { skip, timeout: 90_000 }, async (t) => {
  const h = await spread();
  const vip = lab.vips[1]!;
  const old = ownerOf(h, vip);
  const loop = lab.connectLoop(vip);
  await new Promise((r) => setTimeout(r, 700));
  const t0 = wallNow();
  old.child!.kill('SIGTERM');
  await lab.waitFor('a connection through the new owner', () => firstServedAfter(loop.attempts, t0, old), 5000);
  const attempts = await loop.stop();
  const gap = firstServedAfter(attempts, t0, old)!.end - t0;
  t.diagnostic(`clean handover: ${gap.toFixed(0)} ms`);
  assert.ok(gap < 500, `clean handover took ${gap.toFixed(0)} ms`);
  const code = await new Promise<number | null>((r) => (old.child!.exitCode !== null ? r(old.child!.exitCode) : old.child!.once('exit', (c) => r(c))));
  assert.equal(code, 0);
  lab.start(old);
  await lab.waitReady(old);
});

test('the API server stopped for 30 s: every VIP keeps answering and none moves', { skip, timeout: 120_000 }, async () => {
  const h = await spread();
  const loops = lab.vips.map((v) => lab.connectLoop(v, 500));
  await lab.api.call('stop');
  await new Promise((r) => setTimeout(r, 30_000));
  for (const vip of lab.vips) assert.deepEqual(await lab.arpers(vip), [ownerOf(h, vip).mac], `${vip} still answered by its owner`);
  await lab.api.call('start');
  await new Promise((r) => setTimeout(r, 3000));
  const all = await Promise.all(loops.map((l) => l.stop()));
  all.forEach((attempts, i) => {
    const vip = lab.vips[i]!;
    const bad = attempts.filter((x) => x.via !== ownerOf(h, vip).addr);
    assert.equal(bad.length, 0, `${vip}: ${attempts.length} connections, all through ${ownerOf(h, vip).name}; not: ${JSON.stringify(bad.slice(0, 3))}`);
    assert.ok(attempts.length >= 60, `${vip}: ${attempts.length} connections`);
  });
  assert.deepEqual(await lab.holders(), h, 'no Lease changed hands');
});

test('the owner alone cut off from the API server: a peer takes the VIP after the Lease expires; the old owner stops answering ARP within 1 s of the new owner announcing it', { skip, timeout: 90_000 }, async (t) => {
  const h = await spread();
  const vip = lab.vips[2]!;
  const old = ownerOf(h, vip);
  const info = await lab.client.call<{ mac: string }>('info', { iface: 'lan0' });
  const probe = encodeArp({ op: 1, ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: info.mac, senderMac: info.mac, senderIp: `${lab.subnet}.4`, targetMac: '00:00:00:00:00:00', targetIp: vip }).toString('hex');
  await lab.client.call('captureStart', { iface: 'lan0' });
  const t0 = wallNow();
  await ip(['-n', old.ns, 'route', 'add', 'unreachable', `${lab.subnet}.2/32`]);
  try {
    // Who-has every 100 ms until the old owner has been quiet for a while.
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      await lab.client.call('sendFrame', { iface: 'lan0', hex: probe });
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await ip(['-n', old.ns, 'route', 'del', 'unreachable', `${lab.subnet}.2/32`]).catch(() => {});
  }
  const frames = await lab.client.call<{ at: number; arp: ArpPacket | null }[]>('captureStop');
  const arps = frames.filter((f) => f.arp && f.arp.senderIp === vip && f.at >= t0).map((f) => ({ at: f.at, mac: f.arp!.senderMac, gratuitous: f.arp!.targetIp === vip && f.arp!.senderIp === f.arp!.targetIp, op: f.arp!.op }));
  const announce = arps.find((a) => a.gratuitous && a.mac !== old.mac);
  assert.ok(announce, `a new owner announced ${vip}: ${JSON.stringify(arps.slice(0, 10))}`);
  const taken = announce.at - t0;
  assert.ok(taken >= 1000 && taken < 3000, `taken ${taken.toFixed(0)} ms after the cut (the Lease expires after 1.5 s)`);
  t.diagnostic(`cut off: taken over ${taken.toFixed(0)} ms after the cut`);
  const lastOld = arps.filter((a) => a.mac === old.mac && !a.gratuitous).map((a) => a.at).pop() ?? t0;
  t.diagnostic(`cut off: the old owner's last ARP reply ${(lastOld - announce.at).toFixed(0)} ms after the new owner's announcement`);
  assert.ok(lastOld - announce.at < 1000, `old owner answered until ${(lastOld - announce.at).toFixed(0)} ms after the announcement`);
  const newOwner = lab.byMac(announce.mac)!;
  assert.equal((await lab.holders()).get(vip), newOwner.name);
  assert.deepEqual(await lab.arpers(vip), [newOwner.mac], 'only the new owner answers now');
});

test('Kubernetes with HA: only the leader allocates and writes status (one IPAllocated Event, from it); every appliance binds the VIP and one answers ARP', { skip, timeout: 60_000 }, async () => {
  await spread();
  await lab.api.call('put', { obj: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { conditions: [{ type: 'Ready', status: 'True' }], addresses: [{ type: 'InternalIP', address: `${lab.subnet}.3` }] } } });
  await lab.api.call('put', { obj: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] } } });
  type Svc = { status?: { loadBalancer?: { ingress?: { ip: string }[] } } };
  const vip = await lab.waitFor('the status IP', async () => (await lab.api.call<Svc | null>('get', { resource: 'services', name: 'web', namespace: 'default' }))?.status?.loadBalancer?.ingress?.[0]?.ip);
  assert.equal(vip, `${lab.subnet}.100`);
  const leases = await lab.api.call<{ metadata: { name: string }; spec: { holderIdentity: string } }[]>('list', { resource: 'leases', namespace: 'edgeport-system' });
  const leader = leases.find((l) => l.metadata.name === 'edgeport-leader')!.spec.holderIdentity;
  assert.ok(names().includes(leader), `leader ${leader}`);
  await new Promise((r) => setTimeout(r, 1000));
  const events = (await lab.api.call<{ reason: string; reportingInstance: string; involvedObject: { name: string } }[]>('list', { resource: 'events', namespace: 'default' })).filter((e) => e.involvedObject.name === 'web');
  assert.deepEqual(events.map((e) => [e.reason, e.reportingInstance]), [['IPAllocated', leader]], 'one allocation, by the leader');
  for (const a of lab.appliances) {
    await lab.waitFor(`${a.name} serves the Service's VIP`, async () => {
      const st = (await lab.admin<{ services: { name: string; vip: string }[] }>(a, '/status')).body as { services: { name: string; vip: string }[] };
      return st.services.some((x) => x.name === 'k8s/default/web' && x.vip === vip);
    });
  }
  const owner = await lab.waitFor('a VIP Lease holder', async () => (await lab.holders()).get(vip) || undefined);
  assert.deepEqual(await lab.arpers(vip), [lab.appliances.find((a) => a.name === owner)!.mac]);
  const r = await lab.client.call<string>('connect', { host: vip, port: 80 });
  assert.equal(r.trim(), lab.appliances.find((a) => a.name === owner)!.addr, 'served through the owner to the node');
});
