// The bench's "bare Node" proxies: the least a Node.js L4 proxy can do per connection, to
// measure the ceiling Edgeport runs under (npm run bench -- --proxies ...,node-net,node-raw).
// Not part of Edgeport. Each front port of configs.ts TCP_PAIRS is proxied to its backend.
//
//   node-net  net.Server + net.connect, bytes written on 'data' (pause on backpressure),
//             FIN passed on, an error or close destroys the other side. What every correct
//             proxy on the public net API must do, and nothing else (no retries, timeouts,
//             stats, scheduler, limits).
//   node-raw  the same on libuv TCP handles without net.Socket (process.binding('tcp_wrap'):
//             not a public API), each handle reading into its own buffer (useUserBuffer)
//             instead of a fresh 64 KiB allocation per read. Shows what the stream layer
//             costs; Edgeport's default engine (lb/dataplane/tcp-raw.ts) is built the same way.
//
// Usage: node node-proxy.ts net|raw WORKERS   (WORKERS > 1: that many processes, reusePort)
import { fork } from 'node:child_process';
import net from 'node:net';
import { HOST, PORTS } from './configs.ts';

const PAIRS: ReadonlyArray<readonly [number, number]> = [
  [PORTS.httpFront, PORTS.httpBack],
  [PORTS.bulkFront, PORTS.bulkBack],
  [PORTS.holdFront, PORTS.holdBack],
];

const mode = process.argv[2];
const workers = Number(process.argv[3] ?? 1);
if ((mode !== 'net' && mode !== 'raw') || !(workers >= 1)) {
  console.error('usage: node-proxy.ts net|raw WORKERS');
  process.exit(2);
}
if (workers > 1 && process.env.NODE_PROXY_CHILD === undefined) {
  for (let i = 1; i < workers; i++) {
    fork(process.argv[1]!, [mode, String(workers)], { env: { ...process.env, NODE_PROXY_CHILD: '1' }, execArgv: process.execArgv });
  }
}
const reusePort = workers > 1;

// ---- net: public API ----

interface Side extends net.Socket {
  peer: Side;
}

function onData(this: Side, chunk: Buffer): void {
  if (!this.peer.write(chunk)) this.pause();
}
function onDrain(this: Side): void {
  this.peer.resume();
}
function onEnd(this: Side): void {
  this.peer.end();
}
function onError(this: Side): void {
  this.peer.destroy();
}
function onClose(this: Side): void {
  this.peer.destroy();
}
function wire(s: Side, peer: Side): void {
  s.peer = peer;
  s.on('data', onData);
  s.on('drain', onDrain);
  s.on('end', onEnd);
  s.on('error', onError);
  s.on('close', onClose);
}

function listenNet(front: number, back: number): void {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const up = net.connect({ host: HOST, port: back, noDelay: true, allowHalfOpen: true }) as Side;
    wire(client as Side, up);
    wire(up, client as Side);
  });
  server.listen({ host: HOST, port: front, backlog: 4096, reusePort });
}

// ---- raw: libuv handles (internal bindings) ----

interface Binding {
  TCP: new (type: number) => RawHandle;
  TCPConnectWrap: new () => RawReq;
  constants: { SOCKET: number; SERVER: number; UV_TCP_REUSEPORT: number };
}
interface StreamBinding {
  WriteWrap: new () => RawReq;
  ShutdownWrap: new () => RawReq;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
  streamBaseState: Int32Array;
}
interface RawHandle {
  conn: RawConn;
  /** Where the next read goes (useUserBuffer: libuv holds only a pointer). */
  buf: Buffer;
  onread: (ab: ArrayBuffer | undefined) => Buffer | undefined;
  useUserBuffer(buf: Buffer): void;
  onconnection: (err: number, h: RawHandle) => void;
  writeQueueSize: number;
  bind(addr: string, port: number, flags: number): number;
  listen(backlog: number): number;
  connect(req: RawReq, addr: string, port: number): number;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: RawReq, buf: Buffer): number;
  shutdown(req: RawReq): number;
  setNoDelay(on: boolean): number;
  close(cb?: () => void): void;
}
interface RawReq {
  handle: RawHandle;
  oncomplete: (status: number, ...rest: unknown[]) => void;
  address?: string;
  port?: number;
}

const UV_EOF = -4095;
const HIGH_WATER = 64 * 1024;
const READ_MIN = 1024;
const READ_MAX = 64 * 1024;

class RawConn {
  readonly c: RawHandle;
  u: RawHandle | undefined = undefined;
  /** Client bytes read while the dial is in flight. */
  pending: Buffer[] | undefined = [];
  pendingBytes = 0;
  clientEof = false;
  upstreamEof = false;
  shutdowns = 0;
  closed = false;
  constructor(c: RawHandle) {
    this.c = c;
  }
}

function listenRaw(front: number, back: number): void {
  const tcp = (process as unknown as { binding(n: string): unknown }).binding('tcp_wrap') as Binding;
  const sb = (process as unknown as { binding(n: string): unknown }).binding('stream_wrap') as StreamBinding;
  const state = sb.streamBaseState;

  const destroy = (k: RawConn): void => {
    if (k.closed) return;
    k.closed = true;
    k.c.close();
    k.u?.close();
  };
  const peerOf = (h: RawHandle): RawHandle | undefined => (h === h.conn.c ? h.conn.u : h.conn.c);
  function afterWrite(this: RawReq, status: number): void {
    const k = this.handle.conn;
    if (status < 0) return destroy(k);
    // backpressure: the reader of this peer was stopped while the queue was long
    if (this.handle.writeQueueSize === 0 && !k.closed) {
      const other = peerOf(this.handle)!;
      if (!(other === k.c ? k.clientEof : k.upstreamEof)) other.readStart();
    }
  }
  function afterShutdown(this: RawReq, status: number): void {
    const k = this.handle.conn;
    if (status < 0 || ++k.shutdowns === 2) destroy(k);
  }
  /** Returns true while libuv still holds `buf` (an asynchronous write). */
  const write = (to: RawHandle, from: RawHandle, buf: Buffer): boolean => {
    const req = new sb.WriteWrap() as RawReq & { buffer?: Buffer };
    req.handle = to;
    req.oncomplete = afterWrite;
    if (to.writeBuffer(req, buf) !== 0) {
      destroy(to.conn);
      return false;
    }
    if (sb.streamBaseState[sb.kLastWriteWasAsync] === 0) return false;
    req.buffer = buf;
    if (to.writeQueueSize > HIGH_WATER) from.readStop();
    return true;
  };
  /** Each handle reads into its own buffer: grown when a read fills it, replaced when a write holds it. */
  const userBuffer = (h: RawHandle): void => {
    h.buf = Buffer.allocUnsafe(READ_MIN);
    h.useUserBuffer(h.buf);
  };
  const shutdown = (h: RawHandle): void => {
    const req = new sb.ShutdownWrap();
    req.handle = h;
    req.oncomplete = afterShutdown;
    if (h.shutdown(req) !== 0) destroy(h.conn);
  };
  function onread(this: RawHandle): Buffer | undefined {
    const n = state[sb.kReadBytesOrError]!;
    const k = this.conn;
    if (n > 0) {
      const own = this.buf;
      const buf = own.subarray(0, n);
      let held = true;
      if (this === k.c && k.pending !== undefined) {
        k.pending.push(buf);
        k.pendingBytes += n;
        if (k.pendingBytes > HIGH_WATER) this.readStop();
      } else held = write(peerOf(this)!, this, buf);
      const size = n === own.length ? Math.min(own.length * 16, READ_MAX) : n <= READ_MIN / 2 ? READ_MIN : own.length;
      if (!held && size === own.length) return undefined;
      this.buf = Buffer.allocUnsafe(size);
      return this.buf;
    }
    if (n === UV_EOF) {
      this.readStop();
      if (this === k.c) k.clientEof = true;
      else k.upstreamEof = true;
      if (this !== k.c || k.pending === undefined) shutdown(peerOf(this)!);
      return;
    }
    if (n < 0) destroy(k);
  }
  function afterConnect(this: RawReq, status: number): void {
    const u = this.handle;
    const k = u.conn;
    if (k.closed) return;
    if (status < 0) return destroy(k);
    u.setNoDelay(true);
    u.onread = onread;
    userBuffer(u);
    u.readStart();
    const p = k.pending!;
    k.pending = undefined;
    for (const b of p) write(u, k.c, b);
    if (k.clientEof) shutdown(u);
    else if (k.pendingBytes > HIGH_WATER && u.writeQueueSize <= HIGH_WATER) k.c.readStart();
  }

  const server = new tcp.TCP(tcp.constants.SERVER);
  let err = server.bind(HOST, front, reusePort ? tcp.constants.UV_TCP_REUSEPORT : 0);
  if (err === 0) err = server.listen(4096);
  if (err !== 0) throw new Error(`Cannot listen on ${HOST}:${front}: libuv error ${err}`);
  server.onconnection = (e, c) => {
    if (e !== 0) return;
    c.setNoDelay(true);
    const k = new RawConn(c);
    c.conn = k;
    c.onread = onread;
    userBuffer(c);
    c.readStart();
    const u = new tcp.TCP(tcp.constants.SOCKET);
    u.conn = k;
    k.u = u;
    const req = new tcp.TCPConnectWrap();
    req.handle = u;
    req.oncomplete = afterConnect;
    req.address = HOST;
    req.port = back;
    if (u.connect(req, HOST, back) !== 0) destroy(k);
  };
}

for (const [front, back] of PAIRS) (mode === 'net' ? listenNet : listenRaw)(front, back);
process.on('SIGTERM', () => process.exit(0));
