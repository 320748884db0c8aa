// The epoll engine's own loop (lb/dataplane/epoll.ts) living beside libuv's in one thread:
// libuv I/O, write callbacks and Node timers keep running while it serves, it stops when nothing is left
// registered (the process can exit), it is refused where it cannot run, and its sockaddr
// conversions. The engine's TCP behaviour is tested with the other engines in tcp.test.ts.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { silentLogger } from '../../lb/core/log.ts';
import { Dataplane } from '../../lb/dataplane/dataplane.ts';
import { EpollLoop, fromSockaddr, sockaddr } from '../../lb/dataplane/epoll.ts';
import { freePort, listener, portSpec, request, TcpUpstream } from '../support/upstreams.ts';

/** A Dataplane on the epoll engine serving one echo backend, stopped in t.after. */
async function servingLoop(t: import('node:test').TestContext): Promise<number> {
  const up = await TcpUpstream.start('a', 'echo');
  t.after(() => up.close());
  const dp = new Dataplane({ log: silentLogger, engine: 'epoll' });
  assert.equal(dp.engine, 'epoll');
  t.after(() => dp.stop(0));
  const port = await freePort();
  const res = await dp.apply({ listeners: [listener(portSpec(port, { backends: [up.port] }))] });
  assert.deepEqual(res.failed, []);
  assert.equal((await request(port, 'hello')).data.toString(), 'hello');
  return port;
}

test('libuv I/O in the same thread is not held back while the epoll loop serves', async (t) => {
  await servingLoop(t);
  const srv = http.createServer((_req, res) => res.end('ok'));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  const { port } = srv.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const get = () =>
    new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, agent }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
  assert.equal(await get(), 'ok');
  // Each request needs several libuv events in turn (write, the server's read, its write, the
  // client's read): were any of them to wait for the loop (a bounded sleep in its own
  // epoll_wait, as a first version did), a request would take 10 ms or more.
  const N = 50;
  const started = performance.now();
  for (let i = 0; i < N; i++) assert.equal(await get(), 'ok');
  const perRequest = (performance.now() - started) / N;
  assert.ok(perRequest < 9, `${perRequest.toFixed(2)} ms per request`);
});

test('write callbacks in the same thread are not held back while the epoll loop serves (libuv runs them between turns)', async (t) => {
  await servingLoop(t);
  const up = await TcpUpstream.start('sink', 'hold');
  t.after(() => up.close());
  const s = net.connect({ host: '127.0.0.1', port: up.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  // A write libuv completes at once reports on its next turn: were libuv to block in between
  // (as it would while the loop slept), each would wait for the next event or timer.
  const N = 200;
  const started = performance.now();
  for (let i = 0; i < N; i++) await new Promise<void>((resolve, reject) => s.write('x', (err) => (err ? reject(err) : resolve())));
  const perWrite = (performance.now() - started) / N;
  assert.ok(perWrite < 2, `${perWrite.toFixed(2)} ms per write callback`);
});

test('Node timers fire while the epoll loop serves', async (t) => {
  const port = await servingLoop(t);
  const started = performance.now();
  const fired = await new Promise<number>((resolve) => setTimeout(() => resolve(performance.now() - started), 30));
  assert.ok(fired >= 29 && fired < 1000, `a 30 ms timer fired after ${fired.toFixed(1)} ms`);
  assert.equal((await request(port, 'again')).data.toString(), 'again');
});

test('the epoll loop stops once nothing is registered: a process that opened and closed a listener exits on its own', async () => {
  const script = `
    import { Dataplane } from ${JSON.stringify(new URL('../../lb/dataplane/dataplane.ts', import.meta.url).href)};
    import { silentLogger } from ${JSON.stringify(new URL('../../lb/core/log.ts', import.meta.url).href)};
    const dp = new Dataplane({ log: silentLogger, engine: 'epoll' });
    const spec = { port: 0, protocol: 'TCP', scheduler: 'rr', healthCheck: { type: 'none', interval: 1000, timeout: 500, rise: 1, fall: 1, path: '/' },
      timeouts: { connect: 500, idle: 10000, udpSession: 5000, drain: 100 }, proxyProtocol: 'none', retries: 0,
      limits: { maxConnections: 0, maxUdpSessions: 10 }, backends: [{ address: '127.0.0.1', port: 9, weight: 1 }] };
    const res = await dp.apply({ listeners: [{ key: '127.0.0.1:0/TCP', service: 's', vip: '127.0.0.1', spec }] });
    process.stdout.write(dp.engine + ' ' + res.up.length + '\\n');
    await dp.stop(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(out.trim(), 'epoll 1', 'the listener was up on the epoll engine');
  assert.equal(signal, null, 'exited on its own, not killed after 10 s');
  assert.equal(code, 0);
});

test('Dataplane in a worker thread asked for the epoll engine uses raw (the loop needs the main thread)', async () => {
  const w = new Worker(
    `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(new URL('../../lb/dataplane/dataplane.ts', import.meta.url).href)}).then(async ({ Dataplane }) => {
      const warnings = [];
      const log = { debugEnabled: false, debug() {}, info() {}, error() {}, warn: (msg) => warnings.push(msg), child() { return log; } };
      const dp = new Dataplane({ log, engine: 'epoll' });
      parentPort.postMessage({ engine: dp.engine, warnings });
    });
  `,
    { eval: true },
  );
  const [msg] = (await once(w, 'message')) as [{ engine: string; warnings: string[] }];
  await w.terminate();
  assert.equal(msg.engine, 'raw');
  assert.match(msg.warnings.join('\n'), /epoll TCP engine unavailable here/);
});

test('sockaddr and fromSockaddr: IPv4 and IPv6 both ways, IPv6 written as inet_ntop writes it (RFC 5952), zones as scope ids', () => {
  const rows: [string, string][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['10.20.30.40', '10.20.30.40'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal zero runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['fe80::1:0:0:0:2', 'fe80:0:0:1::2'], // the longest run wins
    ['::ffff:192.0.2.7', '::ffff:192.0.2.7'],
    ['1::', '1::'],
  ];
  for (const [input, want] of rows) {
    const sa = sockaddr(input, 8080);
    assert.equal(sa.length, input.includes(':') ? 28 : 16, input);
    assert.deepEqual(fromSockaddr(sa), { address: want, port: 8080, family: input.includes(':') ? 'IPv6' : 'IPv4' }, input);
  }
  assert.equal(fromSockaddr(Buffer.alloc(28)), undefined, 'AF_UNSPEC');
  // IPv6 zones: a number as it is, a name through the lookup given (libc's if_nametoindex).
  assert.equal(sockaddr('fe80::1%7', 80).readUInt32LE(24), 7);
  assert.equal(sockaddr('fe80::1%eth9', 80, (n) => (n === 'eth9' ? 42 : 0)).readUInt32LE(24), 42);
  assert.equal(sockaddr('fe80::1', 80).readUInt32LE(24), 0);
  assert.deepEqual(fromSockaddr(sockaddr('fe80::1%7', 80))?.address, 'fe80::1');
  const loop = EpollLoop.get();
  assert.ok(loop);
  assert.equal(sockaddr('fe80::1%lo', 80, loop.c.if_nametoindex).readUInt32LE(24), Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8')));
});

test('out of descriptors: the epoll engine stops polling the listener (no spin) and accepts again once descriptors are free', async (t) => {
  const up = await TcpUpstream.start('a', 'echo');
  t.after(() => up.close());
  const port = await freePort();
  const script = `
    import { Dataplane } from ${JSON.stringify(new URL('../../lb/dataplane/dataplane.ts', import.meta.url).href)};
    import { silentLogger } from ${JSON.stringify(new URL('../../lb/core/log.ts', import.meta.url).href)};
    const dp = new Dataplane({ log: silentLogger, engine: 'epoll' });
    const spec = { port: ${port}, protocol: 'TCP', scheduler: 'rr', healthCheck: { type: 'none', interval: 1000, timeout: 500, rise: 1, fall: 1, path: '/' },
      timeouts: { connect: 1000, idle: 60000, udpSession: 5000, drain: 100 }, proxyProtocol: 'none', retries: 0,
      limits: { maxConnections: 0, maxUdpSessions: 10 }, backends: [{ address: '127.0.0.1', port: ${up.port}, weight: 1 }] };
    const res = await dp.apply({ listeners: [{ key: '127.0.0.1:${port}/TCP', service: 's', vip: '127.0.0.1', spec }] });
    process.stdout.write(dp.engine + ' ' + res.up.length + '\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  assert.equal(line.toString().trim(), 'epoll 1');
  const pid = child.pid!;
  // Room for 6 more descriptors: 3 connections (client and backend each), then accept fails.
  const open = readdirSync(`/proc/${pid}/fd`).length;
  const limit = open + 6;
  const r = spawnSync('prlimit', [`--pid=${pid}`, `--nofile=${limit}:`]); // the soft limit only
  assert.equal(r.status, 0, r.stderr?.toString());
  const clients: net.Socket[] = [];
  t.after(() => clients.forEach((c) => c.destroy()));
  for (let i = 0; i < 8; i++) {
    const c = net.connect({ host: '127.0.0.1', port });
    c.on('error', () => {});
    clients.push(c);
    await once(c, 'connect');
  }
  const cpu = () => {
    const f = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in seconds (USER_HZ 100)
  };
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = cpu();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const used = cpu() - before;
  assert.ok(used < 0.3, `the data plane used ${used.toFixed(2)} s of CPU in 1 s while out of descriptors`);
  // Descriptors back: a new client is served.
  clients.forEach((c) => c.destroy());
  const r2 = spawnSync('prlimit', [`--pid=${pid}`, `--nofile=${limit + 100}:`]);
  assert.equal(r2.status, 0, r2.stderr?.toString());
  const again = await request(port, 'again');
  assert.equal(again.data.toString(), 'again');
});
