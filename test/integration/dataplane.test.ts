// Integration tests of the Dataplane as a whole (lb/dataplane/dataplane.ts, workers.ts):
// apply as a diff, drains, stop, bind failures, and the forked multi-worker mode.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { silentLogger } from '../../lb/core/log.ts';
import { Dataplane } from '../../lb/dataplane/dataplane.ts';
import type { ListenerSpec } from '../../lb/dataplane/types.ts';
import { createDataplane, heapFlags } from '../../lb/dataplane/workers.ts';
import {
  fdCount,
  freePort,
  listener,
  portSpec,
  request,
  sleep,
  TcpClient,
  TcpUpstream,
  UdpClient,
  UdpEcho,
  waitFor,
  whoAnswers,
  within,
  type PortSpecInit,
  type TcpMode,
} from '../support/upstreams.ts';

async function upstreams(t: TestContext, mode: TcpMode, ...names: string[]): Promise<TcpUpstream[]> {
  const us = await Promise.all(names.map((n) => TcpUpstream.start(n, mode)));
  t.after(() => Promise.all(us.map((u) => u.close())));
  return us;
}

function dataplane(t: TestContext): Dataplane {
  const dp = new Dataplane({ log: silentLogger });
  t.after(() => dp.stop(0));
  return dp;
}

function tcp(port: number, init: PortSpecInit): ListenerSpec {
  return listener(portSpec(port, init));
}

function client(t: TestContext, port: number): TcpClient {
  const c = new TcpClient(port);
  t.after(() => c.socket.destroy());
  return c;
}

/** Whether a TCP connect to 127.0.0.1:port is refused (within 1 s). */
async function refused(port: number): Promise<boolean> {
  const r = await request(port, 'x', { ms: 1000 });
  return r.error === 'ECONNREFUSED';
}

/** Pids of this process's children (Linux /proc). */
function childPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(name));
    } catch {
      // the process went away meanwhile
    }
  }
  return out;
}

describe('Dataplane.apply as a diff', () => {
  test('a listener that stays keeps an established connection across a backend change; the removed backend drains', async (t) => {
    const [a, b] = await upstreams(t, 'echo', 'a', 'b');
    const dp = dataplane(t);
    const port = await freePort();
    const key = tcp(port, { backends: [] }).key;
    assert.deepEqual((await dp.apply({ listeners: [tcp(port, { backends: [a!.port] })] })).up, [key]);
    const c = client(t, port);
    c.socket.write('one ');
    await c.waitBytes(4);

    const res = await dp.apply({ listeners: [tcp(port, { backends: [b!.port] })] });
    assert.deepEqual(res, { up: [key], failed: [] });
    let s = dp.stats().listeners[0]!;
    assert.deepEqual(
      s.backends.map((x) => [x.port, x.draining, x.active]),
      [
        [b!.port, false, 0],
        [a!.port, true, 1],
      ],
    );
    // The old connection still carries bytes, to a; new ones go to b.
    c.socket.write('two ');
    await c.waitBytes(8);
    assert.equal((await request(port, 'new')).data.toString(), 'new');
    assert.equal(b!.conns.length, 1);
    assert.equal(a!.conns.length, 1);
    c.socket.end('three');
    const r = await within(c.result, 2000, 'old connection end');
    assert.equal(r.data.toString(), 'one two three');
    assert.equal(a!.conns[0]!.data.toString(), 'one two three');
    // Once its last connection ended, the drained backend is gone.
    assert.equal(await waitFor(() => dp.stats().listeners[0]!.backends.length === 1), true);
    s = dp.stats().listeners[0]!;
    assert.equal(s.backends[0]!.port, b!.port);
    assert.equal(dp.activeConnections(), 0);
  });

  test('a removed listener refuses new connections; an established one works until it ends', async (t) => {
    const [a] = await upstreams(t, 'echo', 'a');
    const dp = dataplane(t);
    const port = await freePort();
    await dp.apply({ listeners: [tcp(port, { backends: [a!.port], timeouts: { drain: 5000 } })] });
    const c = client(t, port);
    c.socket.write('before ');
    await c.waitBytes(7);
    assert.deepEqual(await dp.apply({ listeners: [] }), { up: [], failed: [] });
    assert.equal(await refused(port), true, 'new connection refused');
    assert.deepEqual(dp.stats().listeners, []);
    assert.equal(dp.activeConnections(), 1);
    c.socket.write('after ');
    await c.waitBytes(13);
    c.socket.end('end');
    assert.equal((await within(c.result, 2000, 'end')).data.toString(), 'before after end');
    assert.equal(await waitFor(() => dp.activeConnections() === 0), true);
  });

  test('a removed listener cuts what is left at its drain deadline', async (t) => {
    const [a] = await upstreams(t, 'hold', 'a');
    const dp = dataplane(t);
    const port = await freePort();
    await dp.apply({ listeners: [tcp(port, { backends: [a!.port], timeouts: { drain: 300, idle: 60_000 } })] });
    const c = client(t, port);
    c.socket.write('x');
    await a!.waitConns(1);
    const t0 = Date.now();
    await dp.apply({ listeners: [] });
    assert.equal(await waitFor(() => c.ended, 2000), true, 'connection cut');
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 700, `cut after ${took}ms, drain 300ms`);
    assert.equal(await waitFor(() => dp.activeConnections() === 0), true);
  });

  test('a listener can be removed and added back on the same port', async (t) => {
    const [a] = await upstreams(t, 'name', 'a');
    const dp = dataplane(t);
    const port = await freePort();
    await dp.apply({ listeners: [tcp(port, { backends: [a!.port] })] });
    await dp.apply({ listeners: [] });
    assert.equal(await refused(port), true);
    const res = await dp.apply({ listeners: [tcp(port, { backends: [a!.port] })] });
    assert.deepEqual(res.failed, []);
    assert.equal(await whoAnswers(port), 'a');
  });

  test('concurrent applies of one listener bind it once: removing it frees the port', async (t) => {
    const [a] = await upstreams(t, 'name', 'a');
    const dp = dataplane(t);
    const port = await freePort();
    const l = tcp(port, { backends: [a!.port] });
    const rs = await Promise.all([dp.apply({ listeners: [l] }), dp.apply({ listeners: [l] }), dp.apply({ listeners: [l, l] })]);
    for (const r of rs) assert.deepEqual(r, { up: [l.key], failed: [] });
    assert.equal(await whoAnswers(port), 'a');
    await dp.apply({ listeners: [] });
    for (let i = 0; i < 5; i++) assert.equal(await refused(port), true, 'no stray listener left on the port');
  });

  test('bind failure is reported in failed, other listeners come up', async (t) => {
    const [a] = await upstreams(t, 'name', 'a');
    const taken = net.createServer();
    t.after(() => new Promise((r) => taken.close(r)));
    await new Promise<void>((r) => taken.listen({ host: '127.0.0.1', port: 0 }, r));
    const takenPort = (taken.address() as net.AddressInfo).port;
    const okPort = await freePort();
    const dp = dataplane(t);
    const bad = tcp(takenPort, { backends: [a!.port] });
    const good = tcp(okPort, { backends: [a!.port] });
    const res = await dp.apply({ listeners: [bad, good] });
    assert.deepEqual(res.up, [good.key]);
    assert.equal(res.failed.length, 1);
    assert.equal(res.failed[0]!.key, bad.key);
    assert.equal(res.failed[0]!.code, 'EADDRINUSE');
    assert.deepEqual(dp.stats().listeners.map((l) => l.key), [good.key]);
    assert.equal(await whoAnswers(okPort), 'a');
    // A UDP port taken the same way.
    const { default: dgram } = await import('node:dgram');
    const u = dgram.createSocket('udp4');
    t.after(() => u.close());
    await new Promise<void>((r) => u.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    const udpBad = listener(portSpec(u.address().port, { protocol: 'UDP', backends: [a!.port] }));
    const res2 = await dp.apply({ listeners: [good, udpBad] });
    assert.deepEqual(res2.up, [good.key]);
    assert.deepEqual(res2.failed.map((f) => [f.key, f.code]), [[udpBad.key, 'EADDRINUSE']]);
    // Failed binds, retried on every apply, leak no descriptor.
    const fds = fdCount();
    for (let i = 0; i < 20; i++) assert.equal((await dp.apply({ listeners: [good, bad, udpBad] })).failed.length, 2);
    assert.equal(fdCount(), fds);
  });
});

describe('Dataplane.stop', () => {
  test('refuses new connections at once and lets an established one finish', async (t) => {
    const [a] = await upstreams(t, 'echo', 'a');
    const dp = dataplane(t);
    const port = await freePort();
    await dp.apply({ listeners: [tcp(port, { backends: [a!.port] })] });
    const c = client(t, port);
    c.socket.write('hello ');
    await c.waitBytes(6);
    const t0 = Date.now();
    const stopped = dp.stop(3000);
    assert.equal(await refused(port), true, 'refused while draining');
    c.socket.write('world');
    await c.waitBytes(11);
    c.socket.end();
    assert.equal((await within(c.result, 2000, 'end')).data.toString(), 'hello world');
    await within(stopped, 2000, 'stop after the last connection');
    assert.ok(Date.now() - t0 < 1500, 'stop returned once the connection ended, not at the deadline');
    assert.equal(dp.activeConnections(), 0);
  });

  test('cuts a connection still open at the deadline', async (t) => {
    const [a] = await upstreams(t, 'hold', 'a');
    const dp = dataplane(t);
    const port = await freePort();
    await dp.apply({ listeners: [tcp(port, { backends: [a!.port] })] });
    const c = client(t, port);
    c.socket.write('x');
    await a!.waitConns(1);
    const t0 = Date.now();
    await within(dp.stop(300), 2000, 'stop');
    const took = Date.now() - t0;
    assert.ok(took >= 280 && took < 1000, `stop took ${took}ms`);
    assert.equal(await waitFor(() => c.ended, 1000), true, 'client cut');
    assert.equal(await waitFor(() => a!.conns[0]!.ended, 1000), true, 'backend cut');
    assert.equal(dp.activeConnections(), 0);
  });
});

describe('createDataplane with workers', () => {
  test('two worker processes serve TCP and UDP on one VIP:port, stats merge, stop ends them', async (t) => {
    const [a, b] = await upstreams(t, 'name', 'a', 'b');
    const ua = await UdpEcho.start('ua');
    t.after(() => ua.close());
    const before = childPids();
    const dp = await createDataplane({ workers: 2, engine: 'epoll', log: silentLogger, logLevel: 'error', pretty: false });
    t.after(() => dp.stop(0));
    assert.equal(dp.workers, 2);
    const port = await freePort('127.0.0.1', true);
    const tcpL = tcp(port, { backends: [a!.port, b!.port] });
    const udpL = listener(portSpec(port, { protocol: 'UDP', backends: [ua.port] }));
    const res = await dp.apply({ listeners: [tcpL, udpL] });
    assert.deepEqual(res, { up: [tcpL.key, udpL.key], failed: [] });
    assert.equal(childPids().filter((p) => !before.includes(p)).length, 2);

    const N = 40;
    const names = await Promise.all(Array.from({ length: N }, () => whoAnswers(port)));
    assert.ok(names.every((n) => n === 'a' || n === 'b'));
    const clients = await Promise.all(Array.from({ length: 10 }, () => UdpClient.open()));
    t.after(() => clients.forEach((c) => c.close()));
    const replies = await Promise.all(clients.map((c, i) => c.ask(port, `u${i}`)));
    assert.deepEqual(replies, clients.map((_c, i) => `ua:u${i}`));

    // Stats are the sum over both workers.
    await waitFor(async () => (await dp.stats()).listeners.find((l) => l.key === tcpL.key)!.backends.every((x) => x.active === 0));
    const st = await dp.stats();
    const ts = st.listeners.find((l) => l.key === tcpL.key)!;
    const us = st.listeners.find((l) => l.key === udpL.key)!;
    assert.equal(st.listeners.length, 2);
    assert.equal(ts.backends.reduce((n, x) => n + x.total, 0), N);
    assert.equal(a!.conns.length + b!.conns.length, N);
    assert.equal(us.udpSessionsActive, 10);
    assert.equal(us.backends[0]!.total, 10);
    assert.equal(us.bytesRx, clients.reduce((n, _c, i) => n + `u${i}`.length, 0));
    // Both workers took connections (reusePort spreads them; 40 all on one has odds 2^-39).
    assert.ok(a!.conns.length > 0 && b!.conns.length > 0);

    await dp.setBackendUp(tcpL.key, `127.0.0.1:${a!.port}`, false);
    const after = await Promise.all(Array.from({ length: 10 }, () => whoAnswers(port)));
    assert.deepEqual(after, Array(10).fill('b'), 'setBackendUp reached every worker');

    await within(dp.stop(500), 5000, 'stop');
    assert.equal(await waitFor(() => childPids().filter((p) => !before.includes(p)).length === 0, 3000), true, 'no worker left');
    assert.equal(await refused(port), true);
    await sleep(10);
  });

  test('a worker that dies is replaced and gets the last state and health', async (t) => {
    const [a, b] = await upstreams(t, 'name', 'a', 'b');
    const before = childPids();
    const dp = await createDataplane({ workers: 2, engine: 'epoll', log: silentLogger, logLevel: 'error', pretty: false });
    t.after(() => dp.stop(0));
    const port = await freePort();
    const l = tcp(port, { backends: [a!.port, b!.port] });
    await dp.apply({ listeners: [l] });
    await dp.setBackendUp(l.key, `127.0.0.1:${a!.port}`, false);
    const kids = childPids().filter((p) => !before.includes(p));
    assert.equal(kids.length, 2);
    // Gone from /proc: reaped, so every thread has exited and its listening sockets are closed
    // (a zombie leader may still have threads holding them, and a connection queued on a
    // closing socket is reset: SO_REUSEPORT's known limit, not the data plane's).
    const gone = (pid: number) => !existsSync(`/proc/${pid}`);
    process.kill(kids[0]!, 'SIGKILL');
    const replaced = () => childPids().filter((p) => !before.includes(p) && p !== kids[0]).length === 2;
    assert.equal(await waitFor(replaced, 5000), true, 'worker replaced');
    // Wait until the replacement has its listeners (stats list them), then kill the other
    // original worker: until that one is replaced in turn, only the replacement can answer.
    assert.equal(await waitFor(async () => (await dp.stats()).listeners[0]?.backends.every((x) => x.up === (x.port !== a!.port)) === true, 5000), true);
    await sleep(300);
    process.kill(kids[1]!, 'SIGKILL');
    assert.equal(await waitFor(() => gone(kids[1]!), 2000), true);
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(await whoAnswers(port));
    assert.deepEqual(got, Array(5).fill('b'), 'the replacement serves, with a still down');
    await within(dp.stop(0), 5000, 'stop');
    assert.equal(await waitFor(() => childPids().filter((p) => !before.includes(p)).length === 0, 3000), true, 'no worker left');
  });
});

test('workers inherit only the V8 heap sizing flags of the main process (the shim sets --max-semi-space-size)', () => {
  assert.deepEqual(heapFlags(['--inspect', '--max-semi-space-size=8', '--test', '--max-old-space-size=512', '--experimental-foo']), ['--max-semi-space-size=8', '--max-old-space-size=512']);
  assert.deepEqual(heapFlags([]), []);
  assert.match(readFileSync(new URL('../../lb/cli/edgeport', import.meta.url), 'utf8'), /exec "\$node" --max-semi-space-size=8 /);
});
