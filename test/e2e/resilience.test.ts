// Keeping service through failure and change, through the real binary: a backend killed
// under load, reloads under load, panic and recovery, and 10,000 concurrent connections.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { freePort, startEdgeport, tempDir, writeConfig, type Running } from '../support/proc.ts';

interface Backend {
  name: string;
  port: number;
  accepted: number;
  server: net.Server;
  sockets: Set<net.Socket>;
  kill(): Promise<void>;
  revive(): Promise<void>;
}

/**
 * A TCP backend that greets with its name, then echoes. kill() stops it accepting (new
 * connects are refused, as from a dead process) and lets its in-flight exchanges end; the
 * test's connections last a millisecond, and a connection already cut mid-stream by a
 * backend's death cannot be saved by any proxy once bytes have flowed.
 */
async function backend(name: string, port = 0): Promise<Backend> {
  const b = { name, port, accepted: 0, sockets: new Set<net.Socket>() } as Backend;
  const listen = (p: number) =>
    new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer((c) => {
        b.accepted++;
        b.sockets.add(c);
        c.on('close', () => b.sockets.delete(c));
        c.on('error', () => {});
        c.write(`${name}\n`);
        c.on('data', (d) => c.write(d));
        c.on('end', () => c.end());
      });
      s.once('error', reject);
      s.listen(p, '127.0.0.1', () => resolve(s));
    });
  b.server = await listen(port);
  b.port = (b.server.address() as net.AddressInfo).port;
  b.kill = async () => {
    // Listener closed at once; exchanges already in flight finish on their own.
    await new Promise<void>((r) => b.server.close(() => r()));
  };
  b.revive = async () => {
    b.server = await listen(b.port);
  };
  return b;
}

/** One client connection: greeting, one echo round trip, close. Resolves to the backend's name. */
function oneConnection(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.10' });
    let got = '';
    let name = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('timeout'));
    }, 5000);
    s.on('data', (d) => {
      got += d.toString();
      if (!name && got.includes('\n')) {
        name = got.slice(0, got.indexOf('\n'));
        got = got.slice(name.length + 1);
        s.write('ping');
      }
      if (name && got === 'ping') {
        clearTimeout(timer);
        s.end();
        resolve(name);
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (!(name && got === 'ping')) reject(new Error(`closed early (got "${got}")`));
    });
  });
}

interface LoadResult {
  ok: number;
  failed: number;
  errors: string[];
  byBackend: Map<string, number>;
}

/** A bounded load: `concurrency` loops of sequential connections until stop() or maxMs. */
function load(port: number, concurrency: number, maxMs: number) {
  const r: LoadResult = { ok: 0, failed: 0, errors: [], byBackend: new Map() };
  let stopped = false;
  const until = Date.now() + maxMs;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped && Date.now() < until) {
      try {
        const name = await oneConnection(port);
        r.ok++;
        r.byBackend.set(name, (r.byBackend.get(name) ?? 0) + 1);
      } catch (e) {
        r.failed++;
        if (r.errors.length < 10) r.errors.push(String((e as Error).message));
      }
    }
  });
  return {
    result: r,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      return r;
    },
  };
}

async function metric(ep: Running, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${ep.admin}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith(name + '{') && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(t: TestContext, names: string[], extra = '') {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const bs = await Promise.all(names.map((n) => backend(n)));
  t.after(() =>
    Promise.all(
      bs.map((b) => {
        for (const c of b.sockets) c.destroy();
        return b.kill().catch(() => {});
      }),
    ),
  );
  const adminPort = await freePort();
  const port = await freePort('127.0.0.10');
  const yaml = (list: Backend[]) => `node: { name: resilience }
announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
defaults:
  healthCheck: { interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }
  timeouts: { connect: 500ms, drain: 5s }
${extra}
services:
  - name: web
    address: 127.0.0.10
    ports:
      - port: ${port}
        protocol: TCP
        scheduler: rr
        backends:
${list.map((b) => `          - { address: 127.0.0.1, port: ${b.port} }`).join('\n')}
`;
  const config = writeConfig(tmp.dir, yaml(bs));
  const ep = await startEdgeport(config, adminPort);
  t.after(() => ep.stop('SIGKILL'));
  return { bs, ep, port, config, yaml };
}

test('killing one of three backends under load fails no client connection, and the dead one gets no attempt once down', async (t) => {
  const { bs, ep, port } = await setup(t, ['a', 'b', 'c']);
  const victim = bs[1]!;
  const l = load(port, 4, 8000);
  await sleep(700);
  await victim.kill();
  await ep.waitLog((x) => x.msg === 'backend down' && x.backend === `127.0.0.1:${victim.port}`);
  const failuresAtDown = await metric(ep, 'edgeport_connect_failures_total', { backend: `127.0.0.1:${victim.port}` });
  const okAtDown = l.result.ok;
  await sleep(1200);
  const r = await l.stop();
  assert.equal(r.failed, 0, `failed connections: ${r.errors.join('; ')}`);
  assert.ok(r.ok - okAtDown > 50, `load kept going after the kill (${r.ok - okAtDown} connections)`);
  const failuresAtEnd = await metric(ep, 'edgeport_connect_failures_total', { backend: `127.0.0.1:${victim.port}` });
  assert.equal(failuresAtEnd, failuresAtDown, 'no connect attempt reached the dead backend after it was marked down');
  assert.equal(await metric(ep, 'edgeport_backend_up', { backend: `127.0.0.1:${victim.port}` }), 0);
  assert.ok((await metric(ep, 'edgeport_health_checks_total', { backend: `127.0.0.1:${victim.port}`, result: 'fail' })) >= 2, 'failed checks counted');
  assert.ok((await metric(ep, 'edgeport_health_checks_total', { backend: `127.0.0.1:${bs[0]!.port}`, result: 'ok' })) >= 1, 'passing checks counted');
  assert.ok((r.byBackend.get('a') ?? 0) > 0 && (r.byBackend.get('c') ?? 0) > 0);
});

test('reloads under load drop no connection; a connection opened before them still carries bytes', async (t) => {
  const { bs, ep, port, config, yaml } = await setup(t, ['a', 'b', 'c']);
  const long = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.10' }, () => resolve(s));
    s.once('error', reject);
  });
  t.after(() => long.destroy());
  const l = load(port, 4, 10_000);
  const sets = [[bs[0]!, bs[1]!], [bs[1]!, bs[2]!], [bs[0]!, bs[1]!, bs[2]!]];
  for (const [i, set] of sets.entries()) {
    await sleep(300);
    writeFileSync(config, yaml(set));
    ep.child.kill('SIGHUP');
    await ep.waitLog((x) => x.msg === 'reload ok' && ep.logs().filter((y) => y.msg === 'reload ok').length === i + 1);
  }
  await sleep(300);
  const r = await l.stop();
  assert.equal(r.failed, 0, r.errors.join('; '));
  assert.ok(r.ok > 50);
  const echoed = await new Promise<string>((resolve) => {
    let got = '';
    long.on('data', (d) => {
      got += d.toString();
      if (got.endsWith('after-reloads')) resolve(got);
    });
    long.write('after-reloads');
  });
  assert.match(echoed, /after-reloads$/);
  assert.equal(await metric(ep, 'edgeport_config_reloads_total', { result: 'ok' }), 3);
});

test('panic: all backends down sends to all of them; one returning brings traffic back without a restart', async (t) => {
  const { bs, ep, port } = await setup(t, ['a', 'b']);
  for (const b of bs) await b.kill();
  await ep.waitLog((x) => x.msg === 'panic: every backend is down; sending to all of them');
  assert.equal(await metric(ep, 'edgeport_panic', { service: 'web' }), 1);
  await assert.rejects(oneConnection(port));
  await bs[1]!.revive();
  // In panic every backend is tried, so the revived one serves at once, before its checks rise.
  assert.equal(await oneConnection(port), 'b');
  await ep.waitLog((x) => x.msg === 'panic over: a backend is up again');
  for (let i = 0; i < 5; i++) assert.equal(await oneConnection(port), 'b');
  assert.equal(await metric(ep, 'edgeport_panic', { service: 'web' }), 0);
});

test('10,000 concurrent connections opened and closed: the appliance returns to its starting file descriptors', async (t) => {
  // The machine's hard limit is 20,000 descriptors a process. 10,000 proxied connections
  // take 20,000 in the proxy: two workers share them (reusePort), and the backends run in
  // a process of their own, so no process here nears the limit.
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const child = spawn(process.execPath, ['--input-type=module', '-e', BACKENDS], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const ports = await new Promise<number[]>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()) as number[])));
  const adminPort = await freePort();
  const port = await freePort('127.0.0.10');
  const config = writeConfig(
    tmp.dir,
    `announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 2 }
defaults: { healthCheck: { type: none } }   # no check sockets coming and going in the count
services:
  - name: web
    address: 127.0.0.10
    ports:
      - port: ${port}
        protocol: TCP
        backends:
${ports.map((p) => `          - { address: 127.0.0.1, port: ${p} }`).join('\n')}
`,
  );
  const ep = await startEdgeport(config, adminPort);
  t.after(() => ep.stop('SIGKILL'));
  const tree = () => [ep.child.pid!, ...execFileSync('pgrep', ['-P', String(ep.child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number)];
  const pids = tree();
  assert.equal(pids.length, 3, 'main process and two workers');
  // The workers hold the data plane's sockets (the main process also holds admin connections).
  const workers = pids.slice(1);
  const fds = () => workers.reduce((n, p) => n + readdirSync(`/proc/${p}/fd`).length, 0);
  await sleep(300);
  const before = fds();
  const N = 10_000;
  const socks: net.Socket[] = [];
  const until = Date.now() + 90_000;
  for (let i = 0; i < N; i += 500) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(500, N - i) },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect({ port, host: '127.0.0.10' });
            s.once('data', () => resolve(s));
            s.once('error', reject);
          }),
      ),
    );
    socks.push(...batch);
    assert.ok(Date.now() < until, 'opening took too long');
  }
  const during = fds();
  assert.ok(during >= before + 2 * N, `each connection holds two descriptors (${during - before} for ${N})`);
  for (const s of socks) s.destroy();
  const deadline = Date.now() + 30_000;
  while (fds() > before && Date.now() < deadline) await sleep(100);
  assert.equal(fds(), before, 'file descriptors back to the start');
  const doc = (await (await fetch(`${ep.admin}/status`)).json()) as { services: { ports: { backends: { active: number; total: number }[] }[] }[] };
  const bsStats = doc.services[0]!.ports[0]!.backends;
  assert.equal(bsStats.reduce((n, b) => n + b.active, 0), 0);
  assert.equal(bsStats.reduce((n, b) => n + b.total, 0), N);
});

/** Two greeting backends in a process of their own; prints their ports as JSON. */
const BACKENDS = `
import net from 'node:net';
const ports = [];
for (const name of ['a', 'b']) {
  const s = net.createServer((c) => { c.on('error', () => {}); c.write(name + '\\n'); });
  await new Promise((r) => s.listen(0, '127.0.0.1', 4096, r));
  ports.push(s.address().port);
}
process.stdout.write(JSON.stringify(ports) + '\\n');
`;

/** A UDP echo backend answering "name:payload". */
async function udpBackend(name: string) {
  const dgram = await import('node:dgram');
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(`${name}:${m.toString()}`, r.port, r.address));
  await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
  return {
    name,
    port: u.address().port,
    kill: () => {
      try {
        u.close();
      } catch {
        // already closed
      }
    },
  };
}

async function udpClient() {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return {
    ask(port: number, text: string, ms = 1000): Promise<string | undefined> {
      return new Promise((resolve) => {
        const t = setTimeout(() => {
          s.off('message', on);
          resolve(undefined);
        }, ms);
        const on = (m: Buffer) => {
          clearTimeout(t);
          s.off('message', on);
          resolve(m.toString());
        };
        s.on('message', on);
        s.send(text, port, '127.0.0.10');
      });
    },
    close: () => s.close(),
  };
}

test('UDP: a backend that stops answering gets no new sessions once down; the session cap refuses and counts, existing sessions go on', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const bs = [await udpBackend('u1'), await udpBackend('u2')];
  t.after(() => bs.forEach((b) => b.kill()));
  const adminPort = await freePort();
  const port = await freePort('127.0.0.10');
  const config = writeConfig(
    tmp.dir,
    `announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
services:
  - name: dns
    address: 127.0.0.10
    ports:
      - port: ${port}
        protocol: UDP
        scheduler: rr
        limits: { maxUdpSessions: 4 }
        timeouts: { udpSession: 2s }
        healthCheck: { fall: 1, interval: 10s }   # type none (the UDP default): passive checks only
        backends:
          - { address: 127.0.0.1, port: ${bs[0]!.port} }
          - { address: 127.0.0.1, port: ${bs[1]!.port} }
`,
  );
  // Passive checks: a closed UDP port answers ICMP "port unreachable", which ends the session
  // and counts against the backend.
  const ep = await startEdgeport(config, adminPort);
  t.after(() => ep.stop('SIGKILL'));

  const clients = await Promise.all([0, 1, 2, 3, 4].map(() => udpClient()));
  t.after(() => clients.forEach((c) => c.close()));
  const first = await Promise.all(clients.slice(0, 4).map((c, i) => c.ask(port, `hello${i}`)));
  assert.deepEqual(first.map((r) => r?.split(':')[0]).sort(), ['u1', 'u1', 'u2', 'u2']);
  // Cap of 4 sessions reached: a fifth client is refused and counted; the four go on.
  assert.equal(await clients[4]!.ask(port, 'fifth', 500), undefined);
  const rejected = await metric(ep, 'edgeport_limit_rejected_total', { service: 'dns' });
  assert.ok(rejected >= 1, `limit_rejected ${rejected}`);
  await ep.waitLog((x) => x.msg === 'udp session limit reached: dropping new sessions' && x.service === 'dns');
  for (const [i, c] of clients.slice(0, 4).entries()) assert.equal(await c.ask(port, `again${i}`), `${first[i]!.split(':')[0]}:again${i}`);

  // u1 stops answering (its port is closed: ICMP port unreachable).
  bs[0]!.kill();
  const onU1 = clients.slice(0, 4).filter((_, i) => first[i]!.startsWith('u1'));
  for (const c of onU1) await c.ask(port, 'probe', 300); // each datagram to u1 gets ICMP back
  await ep.waitLog((x) => x.msg === 'backend down' && x.backend === `127.0.0.1:${bs[0]!.port}`);
  // Their sessions ended; fresh ones (and new clients) all land on u2.
  for (const c of onU1) assert.equal(await c.ask(port, 'moved'), 'u2:moved');
  const fresh = await udpClient();
  t.after(() => fresh.close());
  await new Promise((r) => setTimeout(r, 2500)); // let idle sessions expire to make room under the cap
  for (let i = 0; i < 3; i++) assert.equal(await fresh.ask(port, `n${i}`), `u2:n${i}`);
});
