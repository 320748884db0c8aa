// The real edgeport binary serving static services: traffic, status, metrics, SIGHUP, SIGTERM,
// several workers, and the npm start demo.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { cli, freePort, ROOT, startEdgeport, tempDir, writeConfig } from '../support/proc.ts';

/** A TCP backend that greets with its name, then echoes. */
async function tcpBackend(name: string): Promise<{ port: number; close: () => void; accepted: () => number }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const s = net.createServer((c) => {
    accepted++;
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => {});
    c.write(`${name}\n`);
    c.on('data', (d) => c.write(d));
    c.on('end', () => c.end());
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () => {
      s.close();
      for (const c of sockets) c.destroy();
    },
  };
}

async function udpBackend(name: string): Promise<{ port: number; close: () => void }> {
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(`${name}:${m.toString()}`, r.port, r.address));
  await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
  return { port: u.address().port, close: () => u.close() };
}

/** Connect, read the greeting (the backend's name), keep the socket. */
function connect(port: number, host = '127.0.0.10'): Promise<{ sock: net.Socket; name: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    sock.once('error', reject);
    sock.once('data', (d) => resolve({ sock, name: d.toString().trim() }));
  });
}

/** Send a line and wait for its echo. */
function roundTrip(sock: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes(text)) {
        sock.off('data', onData);
        resolve(got);
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.write(text);
  });
}

function udpAsk(port: number, text: string, host = '127.0.0.10'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no UDP reply'));
    }, 2000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m.toString());
    });
    s.send(text, port, host);
  });
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return NaN;
}

async function setup(t: import('node:test').TestContext, opts: { workers?: number; drain?: string } = {}) {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const backends = await Promise.all(['a', 'b', 'c'].map(tcpBackend));
  const echoes = await Promise.all(['u1', 'u2'].map(udpBackend));
  t.after(() => {
    for (const b of backends) b.close();
    for (const e of echoes) e.close();
  });
  const adminPort = await freePort();
  const tcpPort = await freePort('127.0.0.10');
  const udpPort = await freePort('127.0.0.10');
  const yaml = (tcpBackends: number[]) => `node: { name: e2e }
announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: ${opts.workers ?? 1} }
defaults:
  timeouts: { drain: ${opts.drain ?? '5s'} }
  healthCheck: { type: none }   # backends count accepted connections: no check connections among them
services:
  - name: web
    address: 127.0.0.10
    ports:
      - port: ${tcpPort}
        protocol: TCP
        scheduler: rr
        backends:
${tcpBackends.map((i) => `          - { address: 127.0.0.1, port: ${backends[i]!.port} }`).join('\n')}
  - name: echo
    address: 127.0.0.10
    ports:
      - port: ${udpPort}
        protocol: UDP
        backends:
${echoes.map((e) => `          - { address: 127.0.0.1, port: ${e.port} }`).join('\n')}
`;
  const config = writeConfig(tmp.dir, yaml([0, 1]));
  const ep = await startEdgeport(config, adminPort);
  t.after(() => ep.stop('SIGKILL'));
  return { tmp, backends, echoes, adminPort, tcpPort, udpPort, yaml, config, ep };
}

test('edgeport run serves TCP (rr) and UDP, and reports them in status and metrics', async (t) => {
  const { tcpPort, udpPort, ep } = await setup(t);
  const names: string[] = [];
  for (let i = 0; i < 4; i++) {
    const c = await connect(tcpPort);
    assert.equal(await roundTrip(c.sock, `ping${i}`), `ping${i}`);
    names.push(c.name);
    c.sock.end();
  }
  assert.deepEqual(names, ['a', 'b', 'a', 'b']);
  const replies = new Set<string>();
  for (let i = 0; i < 4; i++) replies.add((await udpAsk(udpPort, `q${i}`)).split(':')[0]!);
  assert.deepEqual([...replies].sort(), ['u1', 'u2']);

  // Startup logged what it serves.
  const serving = ep.logs().filter((l) => l.msg === 'serving').map((l) => l.listener);
  assert.deepEqual(serving.sort(), [`127.0.0.10:${tcpPort}/TCP`, `127.0.0.10:${udpPort}/UDP`].sort());

  const json = cli(['status', '--admin', ep.admin, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { node: string; services: { name: string; vip: string; ports: { port: number; protocol: string; scheduler: string; backends: { address: string; port: number; weight: number; up: boolean; active: number; total: number }[] }[] }[] };
  const web = doc.services.find((s) => s.name === 'web')!;
  assert.equal(web.vip, '127.0.0.10');
  assert.equal(web.ports[0]!.port, tcpPort);
  assert.equal(web.ports[0]!.protocol, 'TCP');
  assert.equal(web.ports[0]!.scheduler, 'rr');
  assert.deepEqual(
    web.ports[0]!.backends.map((b) => [b.up, b.weight, b.total]),
    [
      [true, 1, 2],
      [true, 1, 2],
    ],
  );
  const table = cli(['status', '--admin', ep.admin]);
  assert.equal(table.code, 0);
  assert.match(table.stdout, new RegExp(`web\\s+127\\.0\\.0\\.10\\s+${doc.node}\\s+${tcpPort}/TCP\\s+rr\\s+127\\.0\\.0\\.1:\\d+\\s+up`), 'the OWNER column names this appliance');

  const metrics = await (await fetch(`${ep.admin}/metrics`)).text();
  const tcpTotal = ['a', 'b'].length * 2;
  let sum = 0;
  for (const line of metrics.split('\n')) if (line.startsWith('edgeport_connections_total{') && line.includes('protocol="TCP"')) sum += Number(line.split(' ').pop());
  assert.equal(sum, tcpTotal);
  assert.equal(metricValue(metrics, 'edgeport_bytes_total', { service: 'web', direction: 'rx' }), 'ping0ping1ping2ping3'.length);
  assert.equal(metricValue(metrics, 'edgeport_udp_sessions_active', { service: 'echo' }), 4);
  assert.equal(metricValue(metrics, 'edgeport_backend_up', { service: 'web' }), 1);
  assert.equal((await fetch(`${ep.admin}/healthz`)).status, 200);
});

test('SIGHUP applies a new file without dropping an established connection; a broken file is refused and counted', async (t) => {
  const { tcpPort, ep, yaml, config, backends } = await setup(t);
  const long = await connect(tcpPort);
  assert.equal(long.name, 'a');

  writeFileSync(config, yaml([1, 2]));
  ep.child.kill('SIGHUP');
  await ep.waitLog((l) => l.msg === 'reload ok');
  assert.equal(await roundTrip(long.sock, 'still-here'), 'still-here');
  const names = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const c = await connect(tcpPort);
    names.add(c.name);
    c.sock.destroy();
  }
  assert.deepEqual([...names].sort(), ['b', 'c']);
  assert.equal(backends[0]!.accepted(), 1, 'the removed backend gets no new connection');

  writeFileSync(config, 'services: [ { name: broken\n');
  ep.child.kill('SIGHUP');
  await ep.waitLog((l) => l.msg === 'reload refused: the running configuration stays');
  const again = await connect(tcpPort);
  assert.ok(['b', 'c'].includes(again.name));
  again.sock.destroy();
  assert.equal(await roundTrip(long.sock, 'after-refusal'), 'after-refusal');
  const metrics = await (await fetch(`${ep.admin}/metrics`)).text();
  assert.equal(metricValue(metrics, 'edgeport_config_reloads_total', { result: 'ok' }), 1);
  assert.equal(metricValue(metrics, 'edgeport_config_reloads_total', { result: 'error' }), 1);
  long.sock.destroy();
});

test('SIGTERM refuses new connections, lets an established one finish, then exits 0', async (t) => {
  const { tcpPort, ep } = await setup(t, { drain: '10s' });
  const held = await connect(tcpPort);
  ep.child.kill('SIGTERM');
  await ep.waitLog((l) => l.msg === 'stopping: listeners closed, draining');
  await assert.rejects(connect(tcpPort), /ECONNREFUSED/);
  assert.equal(await roundTrip(held.sock, 'draining'), 'draining');
  held.sock.end();
  const code = await ep.exited;
  assert.equal(code, 0);
});

test('SIGTERM cuts connections still open at timeouts.drain and exits 0', async (t) => {
  const { tcpPort, ep } = await setup(t, { drain: '500ms' });
  const held = await connect(tcpPort);
  const closed = new Promise<void>((r) => held.sock.once('close', () => r()));
  held.sock.on('error', () => {});
  const t0 = Date.now();
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exited, 0);
  await closed;
  const took = Date.now() - t0;
  assert.ok(took >= 400 && took < 5000, `exit after ${took} ms`);
});

test('with dataplane.workers 2, both workers serve one VIP:port and stop with the main process', async (t) => {
  const { tcpPort, udpPort, ep } = await setup(t, { workers: 2 });
  const pid = ep.child.pid!;
  const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  // The shim execs node, so the children of the main process are the two workers.
  assert.equal(children.length, 2, `workers: ${children.join(',')}`);
  const names: string[] = [];
  for (let i = 0; i < 20; i++) {
    const c = await connect(tcpPort);
    names.push(c.name);
    c.sock.destroy();
  }
  assert.ok(names.includes('a') && names.includes('b'));
  assert.match(await udpAsk(udpPort, 'hello'), /^u[12]:hello$/);
  const doc = (await (await fetch(`${ep.admin}/status`)).json()) as { services: { name: string; ports: { backends: { total: number }[] }[] }[] };
  const total = doc.services.find((s) => s.name === 'web')!.ports[0]!.backends.reduce((n, b) => n + b.total, 0);
  assert.equal(total, 20, 'status sums both workers');
  assert.equal(await ep.stop('SIGTERM'), 0);
  for (const c of children) assert.equal(existsSync(`/proc/${c}`), false, `worker ${c} still runs`);
});

test('npm start demo works end to end (--smoke)', async () => {
  const env = {
    ...process.env,
    EDGEPORT_DEMO_ADMIN_PORT: String(await freePort()),
    EDGEPORT_DEMO_TCP_PORT: String(await freePort('127.0.0.10')),
    EDGEPORT_DEMO_UDP_PORT: String(await freePort('127.0.0.10')),
  };
  const child = spawn(process.execPath, [`${ROOT}/scripts/demo.ts`, '--smoke'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, out);
  const result = JSON.parse(out.trim().split('\n').find((l) => l.startsWith('{"http"'))!) as { http: Record<string, number>; udp: string[]; ok: boolean };
  assert.deepEqual(result.http, { 'web-1': 4, 'web-2': 2, 'web-3': 2 });
  assert.deepEqual(result.udp, ['echo-1', 'echo-2']);
});
