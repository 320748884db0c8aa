// Layer 2 for real, inside two network namespaces this test creates and deletes ("edge" runs
// lb/l2 as Edgeport would; "client" asks for the VIP), joined by a veth pair. All traffic
// stays inside them. Needs root and iproute2; uses iputils arping too when installed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArpPacket } from '../../lb/l2/arp.ts';
import { EDGEPORT_ROUTE_PROTO, type SysctlProblem } from '../../lb/l2/host.ts';
import type { ArpStats, ConflictRecord } from '../../lb/l2/responder.ts';
import { Agent, createLan, ip, netnsSkipReason, nsExec, type Lan } from '../support/netns.ts';

const skip = netnsSkipReason();
const hasArping = (() => {
  try {
    execFileSync('arping', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const SUBNET = `10.231.${process.pid % 250}`;
const VIP = `${SUBNET}.100`;
const NOT_OWNED = `${SUBNET}.101`;
const PORT = 8080;
const OTHER_MAC = '02:00:00:00:be:ef';

type Frame = { at: number; pkttype: number; arp: ArpPacket | null; len: number };
type Stats = ArpStats & { conflictEvents: ConflictRecord[]; announced: { vip: string; at: number }[]; errors: string[]; allAnnounced: boolean };
type ArpResult = { mac?: string; ms?: number; reply?: ArpPacket; all: number[] };

describe('lb/l2 in network namespaces', { skip, timeout: 60_000 }, () => {
  let lan: Lan;
  let edge: Agent;
  let client: Agent;
  let edgeMac = '';
  let clientMac = '';

  before(async () => {
    lan = await createLan(SUBNET);
    edge = new Agent(lan.edge.ns);
    client = new Agent(lan.client.ns);
    edgeMac = (await edge.call<{ mac: string }>('info', { iface: lan.edge.iface })).mac;
    clientMac = (await client.call<{ mac: string }>('info', { iface: lan.client.iface })).mac;
  });

  after(async () => {
    await Promise.allSettled([edge?.kill(), client?.kill()]);
    await lan?.cleanup();
  });

  const gratuitousFromEdge = (frames: Frame[]) =>
    frames.filter((f) => f.arp && f.arp.senderMac === edgeMac && f.arp.senderIp === VIP && f.arp.targetIp === VIP && f.arp.ethDst === 'ff:ff:ff:ff:ff:ff');
  const ask = (targetIp: string, count = 1) =>
    client.call<ArpResult>('arpRequest', { iface: lan.client.iface, senderIp: lan.client.addr, targetIp, timeoutMs: 300, count });

  test('checkSysctls names each wrong sysctl with its command; ensureSysctls sets them', async () => {
    const before = await edge.call<SysctlProblem[]>('checkSysctls', { iface: lan.edge.iface });
    assert.deepEqual(
      before.map((p) => p.message),
      [
        'sysctl net.ipv4.conf.epA.arp_ignore is 0, want 1; set it with: sysctl -w net.ipv4.conf.epA.arp_ignore=1',
        'sysctl net.ipv4.conf.epA.arp_announce is 0, want 2; set it with: sysctl -w net.ipv4.conf.epA.arp_announce=2',
      ],
    );
    const r = await edge.call<{ changed: string[]; problems: SysctlProblem[] }>('ensureSysctls', { iface: lan.edge.iface });
    assert.deepEqual(r, { changed: ['net.ipv4.conf.epA.arp_ignore=1', 'net.ipv4.conf.epA.arp_announce=2'], problems: [] });
    assert.deepEqual(await edge.call('checkSysctls', { iface: lan.edge.iface }), []);
    const missing = await edge.call<SysctlProblem[]>('checkSysctls', { iface: 'nosuch0' });
    assert.match(missing[0]!.message, /cannot be read \(does interface "nosuch0" exist\?\)/);
  });

  test('addLocal adds a proto-tagged local route on lo; the TCP server binds the VIP', async () => {
    await edge.call('addLocal', { vip: VIP });
    await edge.call('addLocal', { vip: VIP }); // idempotent
    const routes = await edge.call<string>('localRoutes');
    assert.match(routes, new RegExp(`^local ${VIP.replaceAll('.', '\\.')} proto ${EDGEPORT_ROUTE_PROTO} scope host`, 'm'));
    await edge.call('listen', { host: VIP, port: PORT });
  });

  test('before the responder runs, nobody answers ARP for the VIP (arp_ignore keeps the kernel quiet)', async () => {
    assert.deepEqual((await ask(VIP)).all, []);
  });

  test('announce: gratuitous request and reply within 100 ms, then twice about 1 s apart', async () => {
    const started = await edge.call<{ mac: string }>('start', { iface: lan.edge.iface });
    assert.equal(started.mac, edgeMac);
    await edge.call('setOwned', { vips: [VIP] });
    assert.equal((await edge.call<Stats>('stats')).allAnnounced, false);
    await client.call('captureStart', { iface: lan.client.iface });
    const { at, sent } = await edge.call<{ at: number; sent: boolean }>('announce', { vip: VIP });
    assert.equal(sent, true);
    await sleep(2400);
    const frames = gratuitousFromEdge(await client.call<Frame[]>('captureStop'));
    const seen = frames.map((f) => ({ op: f.arp!.op, ms: Math.round(f.at - at) }));
    assert.equal(frames.length, 6, JSON.stringify(seen));
    for (const [i, [lo, hi]] of [[0, 100], [900, 1300], [1900, 2300]].entries()) {
      const pair = seen.slice(2 * i, 2 * i + 2);
      assert.deepEqual(pair.map((p) => p.op), [1, 2], `round ${i}: request then reply form: ${JSON.stringify(seen)}`);
      for (const p of pair) assert.ok(p.ms >= lo && p.ms <= hi, `round ${i} at ${p.ms} ms, want ${lo}..${hi}: ${JSON.stringify(seen)}`);
    }
    const stats = await edge.call<Stats>('stats');
    assert.equal(stats.allAnnounced, true);
    assert.equal(stats.gratuitous, 6);
  });

  test('who-has the VIP gets a unicast reply with the edge MAC, answered by the worker', async (t) => {
    const r = await ask(VIP, 200);
    assert.equal(r.all.length, 200, 'every request answered');
    assert.equal(r.mac, edgeMac);
    assert.equal(r.reply!.ethDst, clientMac, 'unicast to the requester');
    assert.equal(r.reply!.targetIp, lan.client.addr);
    const sorted = [...r.all].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(3);
    t.diagnostic(`ARP round trip seen by the client over 200 requests: median ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms`);
    const stats = await edge.call<Stats>('stats');
    assert.ok(stats.requests >= 200 && stats.replies >= 200, JSON.stringify(stats));
  });

  test('arping (iputils) from the client gets the edge MAC for the VIP and nothing for another address', { skip: hasArping ? false : 'iputils-arping is not installed' }, async () => {
    const yes = await nsExec(lan.client.ns, 'arping', ['-c', '1', '-w', '2', '-I', lan.client.iface, VIP]);
    assert.equal(yes.code, 0, yes.stdout + yes.stderr);
    assert.match(yes.stdout, new RegExp(`reply from ${VIP.replaceAll('.', '\\.')} \\[${edgeMac.toUpperCase()}\\]`));
    const no = await nsExec(lan.client.ns, 'arping', ['-c', '1', '-w', '1', '-I', lan.client.iface, NOT_OWNED]);
    assert.notEqual(no.code, 0, no.stdout);
    assert.match(no.stdout, /Received 0 response/);
  });

  test('who-has an address that is not owned gets no reply', async () => {
    assert.deepEqual((await ask(NOT_OWNED, 3)).all, []);
  });

  test('a TCP connection from the client namespace to VIP:port reaches the server (route + ARP)', async () => {
    assert.equal(await client.call('connect', { host: VIP, port: PORT }), `hello from ${VIP}\n`);
  });

  test('conflict: a gratuitous ARP for the VIP from another MAC is counted and reported; no extra announcement; still answering', async () => {
    await client.call('captureStart', { iface: lan.client.iface });
    const before = await edge.call<Stats>('stats');
    // The other host's gratuitous reply: broadcast, sender = target = VIP, another MAC.
    const hex = (s: string) => s.replaceAll(':', '');
    const v = VIP.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('');
    const frame = `ffffffffffff${hex(OTHER_MAC)}0806000108000604` + `0002${hex(OTHER_MAC)}${v}ffffffffffff${v}` + '00'.repeat(18);
    await client.call('sendFrame', { iface: lan.client.iface, hex: frame });
    let stats = before;
    for (let i = 0; i < 40 && stats.conflicts === before.conflicts; i++) {
      await sleep(25);
      stats = await edge.call<Stats>('stats');
    }
    assert.equal(stats.conflicts, before.conflicts + 1);
    assert.deepEqual(stats.vipConflicts.map((c) => [c.vip, c.mac, c.count]), [[VIP, OTHER_MAC, 1]]);
    assert.equal(stats.conflictEvents.at(-1)!.mac, OTHER_MAC);
    const r = await ask(VIP);
    assert.equal(r.mac, edgeMac, 'keeps answering');
    await sleep(1200);
    const frames = gratuitousFromEdge(await client.call<Frame[]>('captureStop'));
    assert.deepEqual(frames, [], 'no ARP war: nothing announced beyond the schedule');
  });

  test('link down and up: every owned VIP is announced again at once', async (t) => {
    await ip(['-n', lan.edge.ns, 'link', 'set', lan.edge.iface, 'down']);
    await sleep(600);
    await client.call('captureStart', { iface: lan.client.iface });
    const upAt = performance.timeOrigin + performance.now();
    await ip(['-n', lan.edge.ns, 'link', 'set', lan.edge.iface, 'up']);
    await sleep(1500);
    const frames = gratuitousFromEdge(await client.call<Frame[]>('captureStop'));
    assert.ok(frames.length >= 2, `got ${frames.length} gratuitous frames after link-up`);
    const ms = frames[0]!.at - upAt;
    t.diagnostic(`first gratuitous ARP ${ms.toFixed(0)} ms after "ip link set up" (link polled every 250 ms)`);
    assert.ok(ms < 1000, `${ms} ms`);
    assert.deepEqual(frames.slice(0, 2).map((f) => f.arp!.op), [1, 2]);
    assert.equal((await ask(VIP)).mac, edgeMac, 'answers again after the flap');
  });

  test('stopAnswering: the next who-has gets no reply, from us or the kernel', async () => {
    await edge.call('stopAnswering');
    assert.deepEqual((await ask(VIP, 3)).all, []);
    if (hasArping) {
      const no = await nsExec(lan.client.ns, 'arping', ['-c', '1', '-w', '1', '-I', lan.client.iface, VIP]);
      assert.notEqual(no.code, 0, no.stdout);
    }
  });

  test('removeAll removes the local route Edgeport added; close stops the worker', async () => {
    await edge.call('removeAll');
    const routes = await edge.call<string>('localRoutes');
    assert.doesNotMatch(routes, new RegExp(`local ${VIP.replaceAll('.', '\\.')} `));
    await edge.call('close');
    assert.deepEqual((await edge.call<Stats>('stats')).errors, []);
  });
});
