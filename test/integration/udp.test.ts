// Integration tests of the UDP data plane (lb/dataplane/udp.ts) through real loopback sockets:
// a Dataplane in this process, UDP echo upstreams that answer `name:payload`.

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { silentLogger } from '../../lb/core/log.ts';
import { Dataplane } from '../../lb/dataplane/dataplane.ts';
import type { ListenerStats } from '../../lb/dataplane/types.ts';
import { freePort, listener, portSpec, sleep, UdpClient, UdpEcho, waitFor, type PortSpecInit } from '../support/upstreams.ts';

// --- helpers ---------------------------------------------------------------------------------

async function echoes(t: TestContext, ...names: string[]): Promise<UdpEcho[]> {
  const us = await Promise.all(names.map((n) => UdpEcho.start(n)));
  t.after(() => Promise.all(us.map((u) => u.close())));
  return us;
}

async function client(t: TestContext, localAddress = '127.0.0.1'): Promise<UdpClient> {
  const c = await UdpClient.open(localAddress);
  t.after(() => c.close());
  return c;
}

interface Lb {
  dp: Dataplane;
  port: number;
  stats(): ListenerStats;
}

async function lb(t: TestContext, init: Omit<PortSpecInit, 'protocol'>): Promise<Lb> {
  const dp = new Dataplane({ log: silentLogger });
  t.after(() => dp.stop(0));
  const port = await freePort('127.0.0.1', true);
  const res = await dp.apply({ listeners: [listener(portSpec(port, { ...init, protocol: 'UDP' }))] });
  assert.deepEqual(res.failed, []);
  return {
    dp,
    port,
    stats: () => {
      const l = dp.stats().listeners[0];
      assert.ok(l);
      return l;
    },
  };
}

function totals(s: ListenerStats): number[] {
  return s.backends.map((b) => b.total);
}

// --- tests -----------------------------------------------------------------------------------

describe('UdpListener sessions', () => {
  test('replies reach the right client among 50, each client address:port one session', async (t) => {
    const us = await echoes(t, 'a', 'b');
    const { port, stats } = await lb(t, { backends: us.map((u) => u.port) });
    const clients = await Promise.all(Array.from({ length: 50 }, () => client(t)));
    // Three rounds of datagrams from every client at once.
    for (let round = 0; round < 3; round++) {
      clients.forEach((c, i) => c.send(port, `client ${i} round ${round}`));
      await waitFor(() => clients.every((c) => c.replies.length === round + 1), 3000);
    }
    for (const [i, c] of clients.entries()) {
      const got = c.replies.map((r) => r.toString());
      assert.equal(got.length, 3, `client ${i} replies`);
      const backendName = got[0]!.split(':')[0]!;
      assert.ok(['a', 'b'].includes(backendName));
      assert.deepEqual(got, [0, 1, 2].map((r) => `${backendName}:client ${i} round ${r}`));
    }
    const s = stats();
    assert.equal(s.udpSessionsActive, 50);
    assert.deepEqual(totals(s), [25, 25], 'rr: one backend per session, alternating');
    assert.equal(s.backends.reduce((n, b) => n + b.active, 0), 50);
    // One upstream socket (source port) per session.
    assert.equal(us[0]!.sources().size + us[1]!.sources().size, 50);
    const bytes = clients.reduce((n, _c, i) => n + [0, 1, 2].reduce((m, r) => m + `client ${i} round ${r}`.length, 0), 0);
    assert.equal(s.bytesRx, bytes);
    assert.equal(s.bytesTx, bytes + 150 * 2);
  });

  test('rr spreads sessions a b c a b c, and a session stays on its backend', async (t) => {
    const us = await echoes(t, 'a', 'b', 'c');
    const { port } = await lb(t, { backends: us.map((u) => u.port) });
    const got: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await client(t);
      const first = (await c.ask(port, 'x')).split(':')[0]!;
      got.push(first);
      assert.equal((await c.ask(port, 'y')).split(':')[0], first);
    }
    assert.deepEqual(got, ['a', 'b', 'c', 'a', 'b', 'c']);
  });

  test('sessions expire after udpSession idle, and a new session starts afterwards', async (t) => {
    const [a] = await echoes(t, 'a');
    const { port, stats } = await lb(t, { backends: [a!.port], timeouts: { udpSession: 300 } });
    const c = await client(t);
    assert.equal(await c.ask(port, 'one'), 'a:one');
    // Traffic keeps the session alive past the bound.
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      assert.equal(await c.ask(port, `keep ${i}`), `a:keep ${i}`);
    }
    assert.equal(stats().udpSessionsActive, 1);
    assert.equal(await waitFor(() => stats().udpSessionsActive === 0, 1500), true, 'session expired');
    assert.equal(stats().backends[0]!.active, 0);
    assert.equal(a!.sources().size, 1);
    assert.equal(await c.ask(port, 'two'), 'a:two');
    const s = stats();
    assert.equal(s.udpSessionsActive, 1);
    assert.equal(s.backends[0]!.total, 2);
    assert.equal(a!.sources().size, 2, 'a new upstream socket for the new session');
  });

  test('maxUdpSessions drops new sessions and counts them; existing ones keep working', async (t) => {
    const [a] = await echoes(t, 'a');
    const { port, stats } = await lb(t, { backends: [a!.port], limits: { maxUdpSessions: 2 } });
    const c1 = await client(t);
    const c2 = await client(t);
    const c3 = await client(t);
    assert.equal(await c1.ask(port, '1'), 'a:1');
    assert.equal(await c2.ask(port, '2'), 'a:2');
    c3.send(port, 'dropped');
    c3.send(port, 'dropped again');
    await sleep(150);
    assert.equal(c3.replies.length, 0);
    assert.equal(a!.received.filter((r) => r.msg.toString().startsWith('dropped')).length, 0);
    const s = stats();
    assert.equal(s.limitRejected, 2);
    assert.equal(s.udpSessionsActive, 2);
    assert.equal(await c1.ask(port, 'still'), 'a:still');
    assert.equal(await c2.ask(port, 'here'), 'a:here');
  });

  test('sh keeps a client IP on one backend, across source ports, and spreads IPs', async (t) => {
    const us = await echoes(t, 'a', 'b', 'c');
    const { port } = await lb(t, { scheduler: 'sh', backends: us.map((u) => u.port) });
    const seen = new Set<string>();
    for (let ip = 2; ip < 14; ip++) {
      const addr = `127.0.0.${ip}`;
      const names = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const c = await client(t, addr); // a new source port each time: a new session
        names.add((await c.ask(port, `${addr} ${i}`)).split(':')[0]!);
      }
      assert.equal(names.size, 1, `${addr} went to ${[...names].join(',')}`);
      seen.add([...names][0]!);
    }
    assert.ok(seen.size >= 2, `12 client IPs all went to ${[...seen].join(',')}`);
  });

  test('PROXY v2 prefixes every datagram with the client and VIP addresses', async (t) => {
    const [a] = await echoes(t, 'a');
    const { port } = await lb(t, { backends: [a!.port], proxyProtocol: 'v2' });
    const c = await client(t, '127.0.0.7');
    await c.ask(port, 'first');
    await c.ask(port, 'second');
    const cport = c.sock.address().port;
    for (const [i, payload] of ['first', 'second'].entries()) {
      const d = a!.received[i]!.msg;
      assert.equal(d[12], 0x21);
      assert.equal(d[13], 0x12, 'AF_INET, DGRAM');
      assert.deepEqual([...d.subarray(16, 20)], [127, 0, 0, 7]);
      assert.deepEqual([...d.subarray(20, 24)], [127, 0, 0, 1]);
      assert.equal(d.readUInt16BE(24), cport);
      assert.equal(d.readUInt16BE(26), port);
      assert.equal(d.subarray(28).toString(), payload);
    }
  });

  test('setBackendUp(false) moves live sessions off the down backend', async (t) => {
    const us = await echoes(t, 'a', 'b');
    const { dp, port, stats } = await lb(t, { backends: us.map((u) => u.port) });
    const clients = await Promise.all(Array.from({ length: 4 }, () => client(t)));
    const first = await Promise.all(clients.map((c, i) => c.ask(port, `${i}`)));
    assert.deepEqual(first.map((r) => r.split(':')[0]).sort(), ['a', 'a', 'b', 'b']);
    assert.equal(dp.setBackendUp(stats().key, `127.0.0.1:${us[0]!.port}`, false), true);
    // Clients keep talking from the same address:port: every reply now comes from b.
    const next = await Promise.all(clients.map((c, i) => c.ask(port, `again ${i}`)));
    assert.deepEqual(next, clients.map((_c, i) => `b:again ${i}`));
    const s = stats();
    assert.equal(s.udpSessionsActive, 4);
    assert.deepEqual(s.backends.map((b) => b.active), [0, 4]);
  });

  test('a backend answering port unreachable ends the session and counts a failure', async (t) => {
    const dead = await freePort('127.0.0.1', true);
    const { port, stats } = await lb(t, { backends: [dead] });
    const c = await client(t);
    c.send(port, 'anyone?');
    assert.equal(await waitFor(() => stats().backends[0]!.connectFailures === 1, 1500), true);
    await waitFor(() => stats().udpSessionsActive === 0);
    assert.equal(stats().udpSessionsActive, 0);
    assert.equal(stats().backends[0]!.active, 0);
  });
});
