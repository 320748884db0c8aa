// HealthChecker against real sockets on 127.0.0.1: tcp and http checks, rise/fall, check
// port override, passive failures, and sync keeping state across reloads.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { silentLogger } from '../../lb/core/log.ts';
import { listenerKey, type HealthCheckSpec, type PortSpec } from '../../lb/core/types.ts';
import type { ListenerSpec } from '../../lb/dataplane/types.ts';
import { HealthChecker, type HealthChange } from '../../lb/health/checker.ts';

function listener(port: number, backends: number[], hc: Partial<HealthCheckSpec>): ListenerSpec {
  const spec: PortSpec = {
    port,
    protocol: 'TCP',
    scheduler: 'rr',
    healthCheck: { type: 'tcp', interval: 40, timeout: 200, rise: 2, fall: 2, path: '/healthz', ...hc },
    timeouts: { connect: 500, idle: 60_000, udpSession: 30_000, drain: 1000 },
    proxyProtocol: 'none',
    retries: 3,
    limits: { maxConnections: 0, maxUdpSessions: 100 },
    backends: backends.map((p) => ({ address: '127.0.0.1', port: p, weight: 1 })),
  };
  return { key: listenerKey('127.0.0.10', port, 'TCP'), service: 'svc', vip: '127.0.0.10', spec };
}

function listenTcp(port = 0): Promise<net.Server> {
  const s = net.createServer((c) => c.destroy());
  return new Promise((resolve) => s.listen(port, '127.0.0.1', () => resolve(s)));
}
const portOf = (s: net.Server | http.Server) => (s.address() as net.AddressInfo).port;

function collector(t: import('node:test').TestContext) {
  const changes: HealthChange[] = [];
  const hc = new HealthChecker({ log: silentLogger, onChange: (c) => changes.push(c) });
  t.after(() => hc.stop());
  const waitFor = async (pred: () => boolean, ms = 3000) => {
    const until = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > until) throw new Error(`timed out; changes: ${JSON.stringify(changes)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { hc, changes, waitFor };
}

test('HealthChecker tcp: a backend that stops listening goes down after fall, and comes back after rise', async (t) => {
  const { hc, changes, waitFor } = collector(t);
  let srv = await listenTcp();
  const port = portOf(srv);
  const ls = listener(1000, [port], {});
  hc.sync([ls]);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(changes.length, 0, 'a healthy backend causes no change');
  await new Promise<void>((r) => srv.close(() => r()));
  await waitFor(() => changes.length === 1);
  assert.deepEqual({ up: changes[0]!.up, backend: changes[0]!.backend, listener: changes[0]!.listener }, { up: false, backend: `127.0.0.1:${port}`, listener: ls.key });
  assert.match(changes[0]!.reason, /ECONNREFUSED/);
  assert.equal(hc.allDown(ls.key), true);
  srv = await listenTcp(port);
  t.after(() => srv.close());
  await waitFor(() => changes.length === 2);
  assert.equal(changes[1]!.up, true);
  assert.equal(hc.health(ls.key, `127.0.0.1:${port}`)?.up, true);
});

test('HealthChecker http: expects 200 on path, on the check port when one is set', async (t) => {
  const { hc, changes, waitFor } = collector(t);
  let code = 200;
  const paths: string[] = [];
  const web = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(code);
    res.end();
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.after(() => web.close());
  const servedPort = 1; // the served port is not what gets checked
  hc.sync([listener(1001, [servedPort], { type: 'http', port: portOf(web), path: '/ready' })]);
  await waitFor(() => paths.length >= 2);
  assert.equal(changes.length, 0);
  assert.ok(paths.every((p) => p === '/ready'));
  code = 503;
  await waitFor(() => changes.length === 1);
  assert.equal(changes[0]!.up, false);
  assert.equal(changes[0]!.reason, 'HTTP 503');
  code = 200;
  await waitFor(() => changes.length === 2);
  assert.equal(changes[1]!.up, true);
});

test('HealthChecker passive failures take a backend down before the next active check', async (t) => {
  const { hc, changes } = collector(t);
  const srv = await listenTcp();
  t.after(() => srv.close());
  const ls = listener(1002, [portOf(srv)], { interval: 60_000, fall: 2 });
  hc.sync([ls]);
  const b = `127.0.0.1:${portOf(srv)}`;
  hc.passiveFailure(ls.key, b, 'ECONNREFUSED');
  assert.equal(changes.length, 0);
  hc.passiveFailure(ls.key, b, 'ECONNREFUSED');
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.up, false);
  assert.match(changes[0]!.reason, /passive/);
});

test('HealthChecker type none: passive failures take it down and it is tried again after rise intervals', async (t) => {
  const { hc, changes, waitFor } = collector(t);
  const ls = listener(1003, [9], { type: 'none', interval: 50, rise: 2, fall: 1 });
  hc.sync([ls]);
  hc.passiveFailure(ls.key, '127.0.0.1:9', 'ECONNREFUSED');
  assert.equal(changes.at(-1)?.up, false);
  await waitFor(() => changes.length === 2, 2000);
  assert.equal(changes[1]!.up, true);
});

test('HealthChecker sync keeps the state of kept backends and forgets removed ones', async (t) => {
  const { hc, changes, waitFor } = collector(t);
  const srv = await listenTcp();
  t.after(() => srv.close());
  const dead = await listenTcp();
  const deadPort = portOf(dead);
  await new Promise<void>((r) => dead.close(() => r()));
  const ls = listener(1004, [portOf(srv), deadPort], {});
  hc.sync([ls]);
  await waitFor(() => changes.length === 1);
  assert.equal(changes[0]!.backend, `127.0.0.1:${deadPort}`);
  // A reload that keeps both: the dead one stays down, no new change.
  hc.sync([listener(1004, [portOf(srv), deadPort], { interval: 45 })]);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(changes.length, 1);
  assert.equal(hc.health(ls.key, `127.0.0.1:${deadPort}`)?.up, false);
  hc.sync([listener(1004, [portOf(srv)], {})]);
  assert.equal(hc.health(ls.key, `127.0.0.1:${deadPort}`), undefined);
});
