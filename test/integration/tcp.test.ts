// Integration tests of the TCP data plane through real loopback sockets: a Dataplane in this
// process, fake upstreams from test/support/upstreams.ts. Every test runs on all three engines:
// the data plane's own epoll loop (lb/dataplane/tcp-epoll.ts, the default), raw libuv handles
// (lb/dataplane/tcp-raw.ts) and node:net (lb/dataplane/tcp.ts).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { silentLogger } from '../../lb/core/log.ts';
import type { TcpEngine } from '../../lb/core/types.ts';
import { Dataplane } from '../../lb/dataplane/dataplane.ts';
import { nextReadBuffer } from '../../lb/dataplane/tcp-raw.ts';
import type { ListenerStats } from '../../lb/dataplane/types.ts';
import {
  BlackholeTcp,
  fdCount,
  freePort,
  listener,
  portSpec,
  request,
  sleep,
  TcpClient,
  TcpUpstream,
  waitFor,
  whoAnswers,
  within,
  type PortSpecInit,
  type TcpMode,
} from '../support/upstreams.ts';

// --- helpers ---------------------------------------------------------------------------------

async function upstreams(t: TestContext, mode: TcpMode, ...names: string[]): Promise<TcpUpstream[]> {
  const us = await Promise.all(names.map((n) => TcpUpstream.start(n, mode)));
  t.after(() => Promise.all(us.map((u) => u.close())));
  return us;
}

/** A port nothing listens on: connects to it are refused. */
async function deadPort(): Promise<number> {
  return freePort();
}

interface Lb {
  dp: Dataplane;
  port: number;
  stats(): ListenerStats;
}

/** A Dataplane with one TCP listener on 127.0.0.1:<free port>, stopped in t.after. */
async function makeLb(t: TestContext, init: PortSpecInit, engine: TcpEngine): Promise<Lb> {
  const dp = new Dataplane({ log: silentLogger, engine });
  assert.equal(dp.engine, engine);
  t.after(() => dp.stop(0));
  const port = await freePort();
  const res = await dp.apply({ listeners: [listener(portSpec(port, init))] });
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

function backend(l: ListenerStats, port: number) {
  const b = l.backends.find((x) => x.port === port);
  assert.ok(b, `backend on port ${port} in stats`);
  return b;
}

for (const engine of ['epoll', 'raw', 'net'] as const) describe(`engine ${engine}`, () => {
const lb = (t: TestContext, init: PortSpecInit): Promise<Lb> => makeLb(t, init, engine);

  // --- bytes -----------------------------------------------------------------------------------

  describe('TcpListener bytes', () => {
    test('echo: bytes arrive intact both ways and are counted', async (t) => {
      const [a] = await upstreams(t, 'echo', 'a');
      const { port, stats } = await lb(t, { backends: [a!.port] });
      const r = await request(port, 'hello edgeport');
      assert.equal(r.data.toString(), 'hello edgeport');
      assert.equal(r.reset, false);
      assert.equal(a!.conns[0]!.data.toString(), 'hello edgeport');
      await waitFor(() => stats().backends[0]!.active === 0);
      const s = stats();
      assert.equal(s.bytesRx, 14);
      assert.equal(s.bytesTx, 14);
      assert.equal(s.backends[0]!.total, 1);
      assert.equal(s.backends[0]!.active, 0);
    });

    /** Writes chunk(0..count-1) honouring backpressure, then FIN; returns the hash of what it wrote. */
    async function sendChunks(s: net.Socket, count: number, chunk: (i: number) => Buffer): Promise<string> {
      const h = createHash('sha256');
      for (let i = 0; i < count; i++) {
        const c = chunk(i);
        h.update(c);
        if (!s.write(c)) await within(once(s, 'drain'), 20_000, 'drain');
      }
      s.end();
      return h.digest('hex');
    }

    /** Hashes what arrives until FIN; with `pauseMs`, reading pauses for pauseMs of every 2 * pauseMs. */
    function receiveHash(s: net.Socket, pauseMs?: number): Promise<{ n: number; hash: string }> {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => {
        n += d.length;
        h.update(d);
      });
      const timer = pauseMs === undefined ? undefined : setInterval(() => (s.isPaused() ? s.resume() : s.pause()), pauseMs);
      return new Promise((resolve) =>
        s.once('end', () => {
          clearInterval(timer);
          resolve({ n, hash: h.digest('hex') });
        }),
      );
    }

    /** Client and backend each send (`send`) and receive (`receive`) at once through the proxy; checks both ways arrive intact. */
    async function bothWays(t: TestContext, send: (s: net.Socket) => Promise<string>, receive: (s: net.Socket) => Promise<{ n: number; hash: string }>, ms: number) {
      let backendSide: Promise<[string, { n: number; hash: string }]> | undefined;
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        backendSide = Promise.all([send(s), receive(s)]);
      });
      t.after(() => new Promise((r) => srv.close(r)));
      await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
      const { port, stats } = await lb(t, { backends: [(srv.address() as net.AddressInfo).port] });
      const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      t.after(() => c.destroy());
      await once(c, 'connect');
      const [clientSent, clientGot] = await within(Promise.all([send(c), receive(c)]), ms, 'client side');
      await waitFor(() => backendSide !== undefined);
      const [backendSent, backendGot] = await within(backendSide!, 5000, 'backend side');
      assert.equal(backendGot.hash, clientSent, 'client to backend intact');
      assert.equal(clientGot.hash, backendSent, 'backend to client intact');
      await waitFor(() => stats().backends[0]!.active === 0);
      assert.equal(stats().bytesRx, backendGot.n);
      assert.equal(stats().bytesTx, clientGot.n);
      return { toBackend: backendGot.n, toClient: clientGot.n };
    }

    test('64 MiB each way at once arrive intact (hash) through backpressure', async (t) => {
      const SIZE = 64 << 20;
      const CHUNK = 1 << 20;
      // Chunk i: a random base with i in its first 4 bytes.
      const send = (s: net.Socket) => {
        const base = randomBytes(CHUNK);
        return sendChunks(s, SIZE / CHUNK, (i) => {
          const c = Buffer.from(base);
          c.writeUInt32BE(i, 0);
          return c;
        });
      };
      const got = await bothWays(t, send, (s) => receiveHash(s), 30_000);
      assert.deepEqual(got, { toBackend: SIZE, toClient: SIZE });
    });

    test('many small writes each way, to readers that keep pausing, arrive intact (hash)', async (t) => {
      // 12,000 writes of 1..1500 random bytes, one segment each (no Nagle); the readers pause
      // 100 ms of every 200, so the proxy's writes back up while its reads stay small.
      const send = (s: net.Socket) => {
        s.setNoDelay(true);
        return sendChunks(s, 12_000, (i) => randomBytes(1 + ((i * 7919) % 1500)));
      };
      await bothWays(t, send, (s) => receiveHash(s, 100), 60_000);
    });

    test('a backend that does not read holds the client back (no unbounded buffering)', async (t) => {
      const held: net.Socket[] = [];
      const srv = net.createServer((s) => {
        s.pause(); // never reads
        held.push(s);
      });
      t.after(() => {
        held.forEach((s) => s.destroy());
        return new Promise((r) => srv.close(r));
      });
      await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
      const { port, stats } = await lb(t, { backends: [(srv.address() as net.AddressInfo).port] });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      await c.connected;
      // Offer 64 MiB without waiting for drain, then see how much the data plane took.
      const chunk = Buffer.alloc(1 << 20, 7);
      for (let i = 0; i < 64; i++) c.socket.write(chunk);
      await sleep(500);
      const rx = stats().bytesRx;
      assert.ok(rx > 0, 'some bytes flowed');
      assert.ok(rx < 24 << 20, `data plane read ${rx} bytes from a client whose backend reads nothing`);
    });
  });

  // --- half-close and resets -------------------------------------------------------------------

  describe('TcpListener half-close and resets', () => {
    test('client ends its write side first and still receives the reply', async (t) => {
      const [a] = await upstreams(t, 'echo', 'a');
      const { port } = await lb(t, { backends: [a!.port] });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      await c.connected;
      c.socket.write('part one, ');
      await c.waitBytes(10);
      c.socket.end('part two');
      const r = await within(c.result, 2000, 'close');
      assert.equal(r.data.toString(), 'part one, part two');
      assert.equal(r.reset, false);
      assert.equal(a!.conns[0]!.ended, true);
    });

    test('backend ends first and the client can still send', async (t) => {
      const [a] = await upstreams(t, 'halfclose', 'a');
      const { port } = await lb(t, { backends: [a!.port] });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      await c.connected;
      await waitFor(() => c.ended);
      assert.equal(c.ended, true, 'client got FIN');
      assert.equal(c.data.toString(), 'a');
      c.socket.write('still ');
      await sleep(50);
      c.socket.end('talking');
      const r = await within(c.result, 2000, 'close');
      assert.equal(r.reset, false);
      await a!.conns[0]!.closed;
      assert.equal(a!.conns[0]!.data.toString(), 'still talking');
      assert.equal(a!.conns[0]!.reset, false);
    });

    test('backend reset: the client sees a reset', async (t) => {
      const [a] = await upstreams(t, 'reset', 'a');
      const { port, stats } = await lb(t, { backends: [a!.port] });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      c.socket.write('boom');
      const r = await within(c.result, 2000, 'client close');
      assert.equal(r.reset, true);
      await waitFor(() => stats().backends[0]!.active === 0);
      assert.equal(stats().backends[0]!.active, 0);
    });

    test('client reset: the backend sees a reset', async (t) => {
      const [a] = await upstreams(t, 'hold', 'a');
      const { port, stats } = await lb(t, { backends: [a!.port] });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      c.socket.write('hi');
      await a!.waitConns(1);
      await waitFor(() => a!.conns[0]!.data.length === 2);
      c.socket.resetAndDestroy();
      await within(a!.conns[0]!.closed, 2000, 'backend close');
      assert.equal(a!.conns[0]!.reset, true);
      assert.equal(a!.conns[0]!.ended, false);
      await waitFor(() => stats().backends[0]!.active === 0);
      assert.equal(stats().backends[0]!.active, 0);
    });
  });

  // --- connect failures and retries ------------------------------------------------------------

  describe('TcpListener retries', () => {
    test('a refused backend is retried on another and the client sees no error', async (t) => {
      const dead = await deadPort();
      const [b] = await upstreams(t, 'echo', 'b');
      const { port, stats } = await lb(t, { backends: [dead, b!.port] });
      // Bytes the client sent while the data plane was still dialing arrive after the retry.
      for (let i = 0; i < 4; i++) {
        const r = await request(port, `payload ${i}`);
        assert.deepEqual([r.data.toString(), r.reset, r.error], [`payload ${i}`, false, undefined]);
      }
      const s = stats();
      assert.ok(backend(s, dead).connectFailures >= 1);
      assert.equal(backend(s, dead).total, 0);
      assert.equal(backend(s, b!.port).total, 4);
      assert.equal(s.noBackend, 0);
    });

    test('a backend that does not accept times out and is retried on another', async (t) => {
      const bh = await BlackholeTcp.start();
      t.after(() => bh.close());
      const [b] = await upstreams(t, 'name', 'b');
      const { port, stats } = await lb(t, { backends: [bh.port, b!.port], timeouts: { connect: 200 } });
      const t0 = Date.now();
      assert.equal(await whoAnswers(port), 'b');
      const took = Date.now() - t0;
      assert.ok(took >= 180, `answered after ${took}ms, before the connect timeout`);
      assert.equal(backend(stats(), bh.port).connectFailures, 1);
    });

    test('a client that resets while the data plane is still dialing is dropped at once', async (t) => {
      const bh = await BlackholeTcp.start();
      t.after(() => bh.close());
      const { dp, port, stats } = await lb(t, { backends: [bh.port], timeouts: { connect: 5000 } });
      const cs = Array.from({ length: 4 }, () => new TcpClient(port));
      t.after(() => cs.forEach((c) => c.socket.destroy()));
      await Promise.all(cs.map((c) => c.connected));
      assert.equal(await waitFor(() => dp.activeConnections() === 4), true);
      // Two reset; two only end their write side, which may be a half-close awaiting an answer.
      cs[0]!.socket.resetAndDestroy();
      cs[1]!.socket.resetAndDestroy();
      cs[2]!.socket.end('request');
      cs[3]!.socket.end();
      assert.equal(await waitFor(() => dp.activeConnections() === 2, 1000), true, `${dp.activeConnections()} connections left`);
      await sleep(100);
      assert.equal(dp.activeConnections(), 2, 'half-closed clients keep waiting for a backend');
      const s = stats();
      assert.equal(s.backends[0]!.active, 0);
      assert.equal(s.backends[0]!.connectFailures, 0, 'an abandoned dial is no backend failure');
    });

    test('every backend dead: the client gets a reset, failures and noBackend counted', async (t) => {
      const dead = [await deadPort(), await deadPort(), await deadPort()];
      const { port, stats } = await lb(t, { backends: dead });
      const r = await request(port, 'anyone?');
      assert.equal(r.reset, true);
      assert.equal(r.data.length, 0);
      const s = stats();
      for (const d of dead) assert.equal(backend(s, d).connectFailures, 1);
      assert.equal(s.noBackend, 1);
      assert.equal(await waitFor(() => stats().backends.every((b) => b.active === 0)), true);
    });

    test('retries: 1 with three dead backends tries only two', async (t) => {
      const dead = [await deadPort(), await deadPort(), await deadPort()];
      const { port, stats } = await lb(t, { backends: dead, retries: 1 });
      const r = await request(port, 'x');
      assert.equal(r.reset, true);
      const s = stats();
      assert.equal(s.backends.reduce((n, b) => n + b.connectFailures, 0), 2);
      assert.equal(s.noBackend, 1);
    });

    test('retries: 0 tries one backend only', async (t) => {
      const dead = await deadPort();
      const [b] = await upstreams(t, 'name', 'b');
      const { port, stats } = await lb(t, { backends: [dead, b!.port], retries: 0 });
      const r = await request(port, 'x');
      assert.equal(r.reset, true);
      assert.equal(backend(stats(), dead).connectFailures, 1);
      assert.equal(await whoAnswers(port), 'b');
    });
  });

  // --- timeouts and limits ---------------------------------------------------------------------

  describe('TcpListener timeouts and limits', () => {
    test('idle timeout closes a connection with no traffic, not before', async (t) => {
      const [a] = await upstreams(t, 'hold', 'a');
      const { port, stats } = await lb(t, { backends: [a!.port], timeouts: { idle: 300 } });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      const t0 = Date.now();
      await c.connected;
      // Traffic keeps it open past the idle bound.
      for (let i = 0; i < 5; i++) {
        c.socket.write('.');
        await sleep(100);
      }
      assert.equal(c.ended, false, 'still open while bytes flow');
      assert.equal(await waitFor(() => c.ended, 2000), true, 'the data plane closed the idle connection (FIN)');
      const took = Date.now() - t0;
      assert.ok(took >= 750, `closed after ${took}ms`);
      await waitFor(() => a!.conns[0]!.ended);
      assert.equal(a!.conns[0]!.ended, true, 'backend side closed too');
      assert.equal(a!.conns[0]!.data.toString(), '.....');
      await waitFor(() => stats().backends[0]!.active === 0);
      assert.equal(stats().backends[0]!.active, 0);
    });

    test('half-closed bound closes a connection left half-closed', async (t) => {
      const [a] = await upstreams(t, 'hold', 'a');
      const { dp, port, stats } = await lb(t, { backends: [a!.port], timeouts: { halfClosed: 300, idle: 5000 } });
      const c = new TcpClient(port);
      t.after(() => c.socket.destroy());
      await c.connected;
      c.socket.end('bye');
      const t0 = Date.now();
      await a!.waitConns(1);
      await waitFor(() => a!.conns[0]!.ended);
      assert.equal(a!.conns[0]!.ended, true, 'backend saw the FIN');
      await within(c.result, 2000, 'half-closed close');
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 1500, `closed after ${took}ms`);
      assert.equal(c.data.length, 0);
      await waitFor(() => stats().backends[0]!.active === 0);
      assert.equal(stats().backends[0]!.active, 0);
      assert.equal(dp.activeConnections(), 0);
    });

    test('half-closed bound counts from the last byte: a reply streaming after the client FIN is not cut', async (t) => {
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        s.resume();
        s.once('end', async () => {
          for (let i = 0; i < 8; i++) {
            if (s.destroyed) return;
            s.write(`chunk ${i};`);
            await sleep(100);
          }
          s.end();
        });
      });
      t.after(() => new Promise((r) => srv.close(r)));
      await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
      const { port } = await lb(t, { backends: [(srv.address() as net.AddressInfo).port], timeouts: { halfClosed: 300 } });
      const r = await request(port, 'download please');
      assert.equal(r.reset, false);
      assert.equal(r.data.toString(), Array.from({ length: 8 }, (_, i) => `chunk ${i};`).join(''));
    });

    test('maxConnections: new connections over the limit are closed at once and counted', async (t) => {
      const [a] = await upstreams(t, 'echo', 'a');
      const { port, stats } = await lb(t, { backends: [a!.port], limits: { maxConnections: 2 } });
      const held = [new TcpClient(port), new TcpClient(port)];
      t.after(() => held.forEach((c) => c.socket.destroy()));
      for (const c of held) c.socket.write('x');
      await Promise.all(held.map((c) => c.waitBytes(1)));
      const r = await request(port, 'over');
      assert.equal(r.data.length, 0);
      assert.equal(stats().limitRejected, 1);
      assert.equal(a!.conns.length, 2);
      // The held ones still work, and once one ends a new one gets in.
      held[0]!.socket.end('y');
      assert.equal((await within(held[0]!.result, 2000, 'end')).data.toString(), 'xy');
      await waitFor(() => stats().backends[0]!.active === 1);
      assert.equal((await request(port, 'now')).data.toString(), 'now');
      assert.equal(stats().limitRejected, 1);
    });
  });

  // --- schedulers through real sockets ----------------------------------------------------------

  describe('TcpListener schedulers', () => {
    test('rr cycles a b c', async (t) => {
      const us = await upstreams(t, 'name', 'a', 'b', 'c');
      const { port } = await lb(t, { backends: us.map((u) => u.port) });
      const got: string[] = [];
      for (let i = 0; i < 6; i++) got.push(await whoAnswers(port));
      assert.deepEqual(got, ['a', 'b', 'c', 'a', 'b', 'c']);
    });

    test('affinityTimeout (sessionAffinity ClientIP) keeps each client address on one backend, even over rr, and across a backend joining', async (t) => {
      const us = await upstreams(t, 'name', 'a', 'b', 'c');
      const { dp, port } = await lb(t, { affinityTimeout: 60_000, backends: us.slice(0, 2).map((u) => u.port) });
      const clients = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24'];
      const first = new Map<string, string>();
      for (const c of clients) first.set(c, await whoAnswers(port, { localAddress: c }));
      assert.ok(new Set(first.values()).size === 2, 'rr spread the first picks');
      await dp.apply({ listeners: [listener(portSpec(port, { affinityTimeout: 60_000, backends: us.map((u) => u.port) }))] });
      for (let i = 0; i < 3; i++) for (const c of clients) assert.equal(await whoAnswers(port, { localAddress: c }), first.get(c), `${c} keeps its backend`);
    });

    test('wrr sends 3:1 to weights 3 and 1', async (t) => {
      const us = await upstreams(t, 'name', 'a', 'b');
      const { port } = await lb(t, { scheduler: 'wrr', backends: [{ port: us[0]!.port, weight: 3 }, { port: us[1]!.port, weight: 1 }] });
      const got: string[] = [];
      for (let i = 0; i < 8; i++) got.push(await whoAnswers(port));
      assert.equal(got.filter((x) => x === 'a').length, 6);
      assert.equal(got.filter((x) => x === 'b').length, 2);
      assert.notDeepEqual(got.slice(0, 3), ['a', 'a', 'a'], 'smooth: no burst of three');
    });

    test('lc sends new connections to the backend with fewer active ones', async (t) => {
      const us = await upstreams(t, 'name', 'a', 'b');
      const { port, stats } = await lb(t, { scheduler: 'lc', backends: us.map((u) => u.port) });
      const held = new TcpClient(port);
      t.after(() => held.socket.destroy());
      const first = (await held.waitBytes(1)).toString();
      const other = first === 'a' ? 'b' : 'a';
      for (let i = 0; i < 5; i++) {
        assert.equal(await whoAnswers(port), other);
        await waitFor(() => stats().backends.reduce((n, b) => n + b.active, 0) === 1);
      }
    });

    test('sh keeps each client IP on one backend and spreads IPs', async (t) => {
      const us = await upstreams(t, 'name', 'a', 'b', 'c');
      const { port } = await lb(t, { scheduler: 'sh', backends: us.map((u) => u.port) });
      const seen = new Set<string>();
      for (let ip = 2; ip < 14; ip++) {
        const localAddress = `127.0.0.${ip}`;
        const first = await whoAnswers(port, { localAddress });
        seen.add(first);
        for (let i = 0; i < 3; i++) assert.equal(await whoAnswers(port, { localAddress }), first, localAddress);
      }
      assert.ok(seen.size >= 2, `12 client IPs all went to ${[...seen].join(',')}`);
    });

    test('setBackendUp(false) takes a backend out of rotation and back in', async (t) => {
      const us = await upstreams(t, 'name', 'a', 'b');
      const { dp, port } = await lb(t, { backends: us.map((u) => u.port) });
      const key = listener(portSpec(port, { backends: [] })).key;
      assert.equal(dp.setBackendUp(key, `127.0.0.1:${us[0]!.port}`, false), true);
      for (let i = 0; i < 4; i++) assert.equal(await whoAnswers(port), 'b');
      assert.equal(dp.setBackendUp(key, `127.0.0.1:${us[0]!.port}`, true), true);
      const got = new Set<string>();
      for (let i = 0; i < 4; i++) got.add(await whoAnswers(port));
      assert.deepEqual([...got].sort(), ['a', 'b']);
    });
  });

  // --- PROXY protocol --------------------------------------------------------------------------

  describe('TcpListener PROXY protocol', () => {
    /** A client from `from` sends 'payload' through a listener with `proxyProtocol`; returns what the backend got, header and payload. */
    async function throughProxyProtocol(t: TestContext, proxyProtocol: 'v1' | 'v2', from: string) {
      const [a] = await upstreams(t, 'hold', 'a');
      const { port } = await lb(t, { backends: [a!.port], proxyProtocol });
      const c = new TcpClient(port, { localAddress: from });
      t.after(() => c.socket.destroy());
      await c.connected;
      c.socket.write('payload');
      await a!.waitConns(1);
      await waitFor(() => a!.conns[0]!.data.toString('latin1').endsWith('payload'));
      return { d: a!.conns[0]!.data, clientPort: c.socket.localPort!, port };
    }

    test('v1 header carries the client and VIP addresses and ports', async (t) => {
      const { d, clientPort, port } = await throughProxyProtocol(t, 'v1', '127.0.0.5');
      assert.equal(d.toString('latin1'), `PROXY TCP4 127.0.0.5 127.0.0.1 ${clientPort} ${port}\r\npayload`);
    });

    test('v2 header carries the client and VIP addresses and ports', async (t) => {
      const { d, clientPort, port } = await throughProxyProtocol(t, 'v2', '127.0.0.6');
      assert.deepEqual([...d.subarray(0, 12)], [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
      assert.equal(d[12], 0x21, 'version 2, PROXY');
      assert.equal(d[13], 0x11, 'AF_INET, STREAM');
      assert.equal(d.readUInt16BE(14), 12);
      assert.deepEqual([...d.subarray(16, 20)], [127, 0, 0, 6]);
      assert.deepEqual([...d.subarray(20, 24)], [127, 0, 0, 1]);
      assert.equal(d.readUInt16BE(24), clientPort);
      assert.equal(d.readUInt16BE(26), port);
      assert.equal(d.subarray(28).toString(), 'payload');
    });
  });

  // --- IPv6 ------------------------------------------------------------------------------------

  describe('TcpListener IPv6', () => {
    test('a VIP and a backend on ::1: bytes both ways, and the PROXY v1 header names both TCP6 addresses', async (t) => {
      const got: Buffer[] = [];
      const srv = net.createServer((s) => {
        s.on('data', (d: Buffer) => {
          got.push(d);
          if (Buffer.concat(got).toString('latin1').endsWith('ping')) s.end('pong');
        });
      });
      srv.listen({ host: '::1', port: 0 });
      await once(srv, 'listening');
      t.after(() => srv.close());
      const dp = new Dataplane({ log: silentLogger, engine });
      t.after(() => dp.stop(0));
      const port = await freePort('::1');
      const backends = [{ address: '::1', port: (srv.address() as net.AddressInfo).port }];
      const res = await dp.apply({ listeners: [listener(portSpec(port, { backends, proxyProtocol: 'v1' }), '::1')] });
      assert.deepEqual(res.failed, []);
      const c = net.connect({ host: '::1', port });
      t.after(() => c.destroy());
      await once(c, 'connect');
      const clientPort = c.localPort;
      c.end('ping');
      const chunks: Buffer[] = [];
      for await (const d of c) chunks.push(d as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), 'pong');
      assert.equal(Buffer.concat(got).toString('latin1'), `PROXY TCP6 ::1 ::1 ${clientPort} ${port}\r\nping`);
    });
  });

  // --- leaks -----------------------------------------------------------------------------------

  describe('TcpListener leaks', () => {
    test('500 connections leave no socket behind (active counts and fds back to start)', async (t) => {
      const us = await upstreams(t, 'echo', 'a', 'b');
      const dead = await deadPort();
      const { port, stats } = await lb(t, { backends: [us[0]!.port, dead, us[1]!.port] });
      // Warm up so lazily created handles exist before the baseline.
      assert.equal((await request(port, 'warm')).data.toString(), 'warm');
      await sleep(50);
      const before = fdCount();
      const N = 500;
      const BATCH = 50;
      let ok = 0;
      for (let i = 0; i < N; i += BATCH) {
        const rs = await Promise.all(
          Array.from({ length: BATCH }, (_, j) => {
            const c = new TcpClient(port);
            const kind = (i + j) % 5;
            if (kind === 0) {
              // A client that resets mid-way.
              c.socket.write('r');
              void c.waitBytes(1).then(() => c.socket.resetAndDestroy(), () => c.socket.destroy());
            } else c.socket.end(`msg ${i + j}`);
            return within(c.result, 5000, 'connection').then((r) => {
              if (kind !== 0 && r.data.toString() === `msg ${i + j}`) ok++;
            });
          }),
        );
        assert.equal(rs.length, BATCH);
      }
      assert.equal(ok, N - N / 5);
      assert.equal(await waitFor(() => stats().backends.every((b) => b.active === 0), 3000), true, 'active back to 0');
      assert.equal(await waitFor(() => fdCount() <= before, 3000), true, `fds ${fdCount()} vs ${before} before`);
      const s = stats();
      assert.equal(s.backends.reduce((n, b) => n + b.total, 0), N + 1);
      assert.equal(s.noBackend, 0);
    });
  });
});

test('raw engine read buffers: grow when a read fills one, fit the last read otherwise, fresh while a write holds the old', () => {
  const K = 1024;
  const size = (cur: number, n: number, held = false) => nextReadBuffer(new Uint8Array(cur), n, held)?.length ?? 'same';
  const rows: [number, number, boolean, number | 'same'][] = [
    [K, 100, false, 'same'],
    [K, 100, true, K], // the old one is held: a new one of the same size
    [K, K, false, 16 * K],
    [16 * K, 16 * K, false, 64 * K],
    [64 * K, 64 * K, false, 'same'],
    [64 * K, 64 * K, true, 64 * K],
    [64 * K, 20 * K, false, 'same'],
    [64 * K, 3 * K, false, 16 * K],
    [64 * K, 500, false, K], // back to small messages, or the last read before idle: 1 KiB again
    [16 * K, 10 * K, false, 'same'],
  ];
  for (const [cur, n, held, want] of rows) assert.equal(size(cur, n, held), want, `${cur} bytes, read ${n}${held ? ', held' : ''}`);
});
