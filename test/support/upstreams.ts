// In-process fake upstreams and small socket helpers for the data plane's integration tests.
// Loopback only (127.0.0.0/8); every wait is bounded in time; callers close what they open
// in t.after.

import dgram from 'node:dgram';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { listenerKey, type PortSpec } from '../../lb/core/types.ts';
import type { ListenerSpec } from '../../lb/dataplane/types.ts';

// --- specs -----------------------------------------------------------------------------------

export type PortSpecInit = Partial<Omit<PortSpec, 'timeouts' | 'limits' | 'backends'>> & {
  timeouts?: Partial<PortSpec['timeouts']>;
  limits?: Partial<PortSpec['limits']>;
  /** Backends as ports on 127.0.0.1, or with an address and weight. */
  backends: (number | { port: number; address?: string; weight?: number })[];
};

/** A PortSpec with every default resolved, its timeouts short enough for tests. */
export function portSpec(port: number, init: PortSpecInit): PortSpec {
  return {
    port,
    protocol: init.protocol ?? 'TCP',
    scheduler: init.scheduler ?? 'rr',
    healthCheck: init.healthCheck ?? { type: 'none', interval: 1000, timeout: 500, rise: 1, fall: 1, path: '/healthz' },
    timeouts: { connect: 500, idle: 10_000, udpSession: 5_000, drain: 2_000, halfClosed: 5_000, ...init.timeouts },
    proxyProtocol: init.proxyProtocol ?? 'none',
    retries: init.retries ?? 3,
    limits: { maxConnections: 0, maxUdpSessions: 65536, ...init.limits },
    ...(init.affinityTimeout !== undefined ? { affinityTimeout: init.affinityTimeout } : {}),
    backends: init.backends.map((b) =>
      typeof b === 'number'
        ? { address: '127.0.0.1', port: b, weight: 1 }
        : { address: b.address ?? '127.0.0.1', port: b.port, weight: b.weight ?? 1 },
    ),
  };
}

/** A ListenerSpec for service `svc` on vip:port (port taken from the spec). */
export function listener(spec: PortSpec, vip = '127.0.0.1', service = 'svc'): ListenerSpec {
  return { key: listenerKey(vip, spec.port, spec.protocol), service, vip, spec };
}

// --- ports and fds ---------------------------------------------------------------------------

/**
 * A port free on `host` for TCP, or for both TCP and UDP with `both` (listeners of one port
 * number in both protocols). Bound, read and closed: the caller binds it again.
 */
export async function freePort(host = '127.0.0.1', both = false): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const srv = net.createServer();
    srv.listen({ host, port: 0 });
    await once(srv, 'listening');
    const port = (srv.address() as net.AddressInfo).port;
    let ok = true;
    if (both) {
      const u = dgram.createSocket('udp4');
      ok = await new Promise<boolean>((resolve) => {
        u.once('error', () => resolve(false));
        u.bind({ address: host, port }, () => resolve(true));
      });
      u.close();
    }
    await new Promise((r) => srv.close(r));
    if (ok) return port;
  }
  throw new Error(`Cannot find a free port on ${host}`);
}

/** Open file descriptors of this process (Linux). */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Poll `cond` every 10 ms until it holds or `ms` passes; returns whether it held. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000; i++) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(10);
  }
  return false;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reject after `ms` unless `p` settles first. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms}ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// --- fake TCP upstream -----------------------------------------------------------------------

/**
 * How a fake TCP upstream treats each connection:
 * - echo: writes back every byte; ends when the client ends.
 * - name: writes its name at once; ends when the client ends.
 * - halfclose: writes its name and ends at once (FIN first), still reading.
 * - reset: resets the connection (RST) as soon as the first bytes arrive.
 * - hold: reads and records, never writes nor ends.
 */
export type TcpMode = 'echo' | 'name' | 'halfclose' | 'reset' | 'hold';

export class UpstreamConn {
  readonly socket: net.Socket;
  readonly chunks: Buffer[] = [];
  /** The peer sent FIN. */
  ended = false;
  /** The peer reset the connection (ECONNRESET). */
  reset = false;
  readonly closed: Promise<void>;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.chunks.push(d));
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') this.reset = true;
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export class TcpUpstream {
  readonly name: string;
  mode: TcpMode;
  readonly server: net.Server;
  readonly conns: UpstreamConn[] = [];
  port = 0;

  private constructor(name: string, mode: TcpMode) {
    this.name = name;
    this.mode = mode;
    this.server = net.createServer({ allowHalfOpen: true }, (s) => this.onConnection(s));
  }

  static async start(name: string, mode: TcpMode = 'echo', host = '127.0.0.1'): Promise<TcpUpstream> {
    const u = new TcpUpstream(name, mode);
    u.server.listen({ host, port: 0 });
    await once(u.server, 'listening');
    u.port = (u.server.address() as net.AddressInfo).port;
    return u;
  }

  private onConnection(s: net.Socket): void {
    const c = new UpstreamConn(s);
    this.conns.push(c);
    switch (this.mode) {
      case 'echo':
        s.pipe(s);
        break;
      case 'name':
        s.write(this.name);
        s.once('end', () => s.end());
        break;
      case 'halfclose':
        s.end(this.name);
        break;
      case 'reset':
        s.once('data', () => s.resetAndDestroy());
        break;
      case 'hold':
        break;
    }
  }

  /** Wait until `n` connections arrived. */
  async waitConns(n: number, ms = 2000): Promise<void> {
    if (!(await waitFor(() => this.conns.length >= n, ms))) {
      throw new Error(`Upstream ${this.name}: ${this.conns.length} connections after ${ms}ms, wanted ${n}`);
    }
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    if (this.server.listening) await new Promise((r) => this.server.close(r));
  }
}

// --- TCP client ------------------------------------------------------------------------------

export interface ClientResult {
  data: Buffer;
  /** The connection ended by a reset (ECONNRESET), not by FIN. */
  reset: boolean;
  /** Any other error (ECONNREFUSED, ...). */
  error?: string;
}

export class TcpClient {
  readonly socket: net.Socket;
  readonly chunks: Buffer[] = [];
  /** Set once the peer's FIN arrived. */
  ended = false;
  /** Resolves when the socket closed, however it ended. */
  readonly result: Promise<ClientResult>;
  readonly connected: Promise<void>;

  constructor(port: number, opts: { host?: string; localAddress?: string } = {}) {
    this.socket = net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, allowHalfOpen: true });
    this.socket.on('data', (d: Buffer) => this.chunks.push(d));
    this.socket.on('end', () => {
      this.ended = true;
    });
    let reset = false;
    let error: string | undefined;
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') reset = true;
      else error = err.code ?? err.message;
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('close', () => reject(new Error(`closed before connecting: ${error ?? 'closed'}`)));
    });
    this.connected.catch(() => {});
    this.result = new Promise((resolve) => {
      this.socket.once('close', () => resolve({ data: Buffer.concat(this.chunks), reset, error }));
    });
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Wait until at least `n` bytes arrived. */
  async waitBytes(n: number, ms = 2000): Promise<Buffer> {
    if (!(await waitFor(() => this.chunks.reduce((a, c) => a + c.length, 0) >= n, ms))) {
      throw new Error(`Client got ${this.data.length} bytes after ${ms}ms, wanted ${n}`);
    }
    return this.data;
  }
}

/**
 * Connect, send `send` (if any), end the write side, and collect every byte until the
 * connection closes.
 */
export function request(port: number, send?: string | Buffer, opts: { host?: string; localAddress?: string; ms?: number } = {}): Promise<ClientResult> {
  const c = new TcpClient(port, opts);
  c.socket.end(send ?? '');
  return within(c.result, opts.ms ?? 3000, `request to port ${port}`).finally(() => c.socket.destroy());
}

/** The text a `name` upstream answered, for scheduler tests. */
export async function whoAnswers(port: number, opts: { localAddress?: string } = {}): Promise<string> {
  const r = await request(port, undefined, opts);
  if (r.reset || r.error) throw new Error(`request failed: ${r.error ?? 'reset'}`);
  return r.data.toString();
}

// --- a TCP listener that does not accept ----------------------------------------------------

/**
 * A listening TCP socket whose accept queue is full, so further SYNs are dropped and a
 * connect to it times out (all on loopback). The socket listens in a worker thread that
 * blocks in Atomics.wait, so nothing accepts; filler connections fill the queue.
 */
export class BlackholeTcp {
  port = 0;
  private worker: import('node:worker_threads').Worker | undefined;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private readonly fillers: net.Socket[] = [];

  static async start(): Promise<BlackholeTcp> {
    const b = new BlackholeTcp();
    const { Worker } = await import('node:worker_threads');
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const net = require('node:net');
      const srv = net.createServer();
      srv.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
        parentPort.postMessage(srv.address().port);
        // Block this thread's event loop: nothing accepts until the flag is set (at most 60 s).
        setTimeout(() => { Atomics.wait(workerData, 0, 0, 60000); srv.close(); }, 50);
      });`;
    b.worker = new Worker(src, { eval: true, workerData: b.flag });
    b.port = (await once(b.worker, 'message'))[0] as number;
    await sleep(100);
    // Fill the accept queue: connect until a connect does not complete within 150 ms.
    for (let i = 0; i < 16; i++) {
      const s = net.connect({ host: '127.0.0.1', port: b.port });
      s.on('error', () => {});
      b.fillers.push(s);
      const ok = await Promise.race([once(s, 'connect').then(() => true), sleep(150).then(() => false)]);
      if (!ok) return b;
    }
    await b.close();
    throw new Error('Cannot fill the accept queue of the blackhole listener');
  }

  async close(): Promise<void> {
    for (const s of this.fillers) s.destroy();
    Atomics.store(this.flag, 0, 1);
    Atomics.notify(this.flag, 0);
    await this.worker?.terminate();
  }
}

// --- fake UDP upstream -----------------------------------------------------------------------

/** A UDP server that replies `name:payload` to every datagram and records what came. */
export class UdpEcho {
  readonly name: string;
  readonly sock: dgram.Socket;
  readonly received: { msg: Buffer; address: string; port: number }[] = [];
  port = 0;

  private constructor(name: string) {
    this.name = name;
    this.sock = dgram.createSocket('udp4');
    this.sock.on('message', (msg, rinfo) => {
      this.received.push({ msg, address: rinfo.address, port: rinfo.port });
      this.sock.send(Buffer.concat([Buffer.from(this.name + ':'), msg]), rinfo.port, rinfo.address);
    });
  }

  static async start(name: string, host = '127.0.0.1'): Promise<UdpEcho> {
    const u = new UdpEcho(name);
    await new Promise<void>((resolve) => u.sock.bind({ address: host, port: 0 }, () => resolve()));
    u.port = u.sock.address().port;
    return u;
  }

  /** Distinct source address:port pairs seen (one per data plane session). */
  sources(): Set<string> {
    return new Set(this.received.map((r) => `${r.address}:${r.port}`));
  }

  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

/** A UDP client socket bound to `localAddress`, collecting replies. */
export class UdpClient {
  readonly sock: dgram.Socket;
  readonly replies: Buffer[] = [];

  private constructor() {
    this.sock = dgram.createSocket('udp4');
    this.sock.on('message', (m) => this.replies.push(m));
  }

  static async open(localAddress = '127.0.0.1'): Promise<UdpClient> {
    const c = new UdpClient();
    await new Promise<void>((resolve) => c.sock.bind({ address: localAddress, port: 0 }, () => resolve()));
    return c;
  }

  send(port: number, payload: string | Buffer, host = '127.0.0.1'): void {
    this.sock.send(typeof payload === 'string' ? Buffer.from(payload) : payload, port, host);
  }

  /** Send and wait for the next reply (bounded), as text. */
  async ask(port: number, payload: string, ms = 1000): Promise<string> {
    const n = this.replies.length;
    this.send(port, payload);
    if (!(await waitFor(() => this.replies.length > n, ms))) throw new Error(`No UDP reply to "${payload}" within ${ms}ms`);
    return this.replies[n]!.toString();
  }

  close(): void {
    this.sock.close();
  }
}
