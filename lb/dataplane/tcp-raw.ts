// TCP virtual service on raw libuv handles (uv.ts): the same behaviour as tcp.ts (dial with
// retries before any byte is forwarded, splice both ways with backpressure, half-close,
// resets passed on, connect/idle/half-closed bounds from the data plane's one sweep), with
// no net.Socket, stream or EventEmitter in between (dataplane.engine: raw, the engine where
// the default epoll engine, tcp-epoll.ts, cannot run); tcp.ts is the node:net engine.
//
// Why (npm run bench, 1 core, HTTP Connection: close): per connection the kernel does the
// same work for HAProxy and for Node (about 165k instructions: 21 syscalls), and throughput
// follows total instructions. net.Socket adds about 55k instructions of user space per
// connection (objects, listeners, nextTicks, stream state): that is the gap.
//
// Hot path: one Conn object per connection, both handles carry it; module-level callbacks
// (no closures per connection); each side reads into its own buffer (useUserBuffer), so a
// read allocates nothing (Node's default is a fresh 64 KiB backing store per read, copied
// into an ArrayBuffer of the read's size); a write that libuv completed at once allocates
// nothing either (its request is reused); reads stop while the peer's write queue is over
// HIGH_WATER and start again when it drains (afterWrite).

import type { Logger } from '../core/log.ts';
import { SplicedConn, SplicingTcpListener } from './listener.ts';
import type { DataplaneHooks, ListenerSpec } from './types.ts';
import { UV_EOF, uvBindings, uvError, type UvAddress, type UvBindings, type UvReq, type UvTcp } from './uv.ts';

/** Bytes queued to one side before the other side stops reading (net's highWaterMark). */
const HIGH_WATER = 64 * 1024;

/**
 * A side's read buffer starts at READ_MIN (an idle connection costs two 1 KiB slices of Node's
 * buffer pool). A read that fills it moves the next read to the next size up (1, 16, 64 KiB:
 * bulk moves in 64 KiB reads; 16 KiB measured 0.7x the throughput); any other read sizes the
 * next buffer to fit it, so a connection back to small messages, or idle, holds little. A
 * read whose bytes a write or the dial still holds gets a fresh buffer for the next read;
 * the holder keeps the old one alive.
 */
const READ_MIN = 1024;
const READ_MID = 16 * 1024;
const READ_MAX = 64 * 1024;

export function nextReadBuffer(cur: Uint8Array, n: number, held: boolean): Uint8Array | undefined {
  const size = n === cur.length ? (n < READ_MID ? READ_MID : READ_MAX) : n <= READ_MIN ? READ_MIN : n <= READ_MID ? READ_MID : READ_MAX;
  if (!held && size === cur.length) return undefined;
  return Buffer.allocUnsafe(size);
}

interface Handle extends UvTcp {
  conn: Conn;
}

// Per side: flag bits of Conn.client / Conn.upstream state.
const EOF = 1; // the side sent FIN (we read EOF)
const SHUT = 2; // our FIN to the side has been written (shutdown done)
const SHUTTING = 4; // shutdown requested
const STOPPED = 8; // reading stopped for backpressure (or while dialing)
const CLOSED = 16; // handle closed

class Conn extends SplicedConn {
  readonly l: RawTcpListener;
  readonly c: Handle;
  u: Handle | undefined = undefined;
  cf = 0;
  uf = 0;
  /** Where the next read of each side goes (libuv holds only a pointer: referenced here). */
  cbuf: Uint8Array = Buffer.allocUnsafe(READ_MIN);
  ubuf: Uint8Array | undefined = undefined;

  constructor(l: RawTcpListener, c: Handle, now: number) {
    super(now);
    this.l = l;
    this.c = c;
  }
}

let uv: UvBindings;

function peerOf(h: Handle): Handle | undefined {
  const k = h.conn;
  return h === k.c ? k.u : k.c;
}

function flagsOf(k: Conn, h: Handle): number {
  return h === k.c ? k.cf : k.uf;
}

function setFlag(k: Conn, h: Handle, f: number): void {
  if (h === k.c) k.cf |= f;
  else k.uf |= f;
}

function clearFlag(k: Conn, h: Handle, f: number): void {
  if (h === k.c) k.cf &= ~f;
  else k.uf &= ~f;
}

function closeHandle(k: Conn, h: Handle, rst: boolean): void {
  if (flagsOf(k, h) & CLOSED) return;
  setFlag(k, h, CLOSED);
  // A reset fails once a shutdown is pending (EINVAL): our FIN is on its way, close then.
  if (!rst || h.reset() !== 0) h.close();
}

// ---- module-level callbacks: `this` is the handle or request, `.conn` its connection ----

/** A read into the side's own buffer (useUserBuffer); returns where the next read goes, if elsewhere. */
function onread(this: Handle): Uint8Array | undefined {
  const n = uv.state[uv.kReadBytesOrError]!;
  const k = this.conn;
  if (k.closed) return undefined;
  if (n > 0) {
    const client = this === k.c;
    const own = client ? k.cbuf : k.ubuf!;
    const buf = new Uint8Array(own.buffer, own.byteOffset, n);
    let held = false;
    if (client && !k.connected) {
      k.rx += n;
      (k.pending ??= []).push(buf);
      k.pendingBytes += n;
      if (k.pendingBytes > HIGH_WATER) stopReading(k, this);
      held = true;
    } else {
      if (client) k.rx += n;
      else k.upRx += n;
      const peer = peerOf(this)!;
      if (!(flagsOf(k, peer) & (CLOSED | SHUTTING))) held = write(k, peer, this, buf);
    }
    const next = nextReadBuffer(own, n, held);
    if (next === undefined) return undefined;
    if (client) k.cbuf = next;
    else k.ubuf = next;
    return next;
  }
  if (n === UV_EOF) {
    setFlag(k, this, EOF);
    if (k.halfSince === 0) k.halfSince = k.l.now();
    if (!k.connected) return undefined;
    const peer = peerOf(this)!;
    // Both sides sent FIN and nothing is queued either way: closing both sends our FINs after
    // the bytes in flight (nothing is left unread, so no reset), one request and callback
    // sooner than a shutdown would.
    if (flagsOf(k, peer) & EOF && this.writeQueueSize === 0 && peer.writeQueueSize === 0) {
      k.l.finish(k, false);
      return undefined;
    }
    // Half-close travels on: the peer gets our FIN once every byte before it is written.
    shutdown(k, peer);
    return undefined;
  }
  if (n < 0) k.l.sideError(k, this, uvError(n, 'read'));
  return undefined;
}

function stopReading(k: Conn, h: Handle): void {
  setFlag(k, h, STOPPED);
  h.readStop();
}

function startReading(k: Conn, h: Handle): void {
  const f = flagsOf(k, h);
  if (!(f & STOPPED) || f & (EOF | CLOSED)) return;
  clearFlag(k, h, STOPPED);
  h.readStart();
}

/**
 * A write request that libuv did not keep: a write it completes at once (most of them) never
 * touches its request object, so the next write reuses it.
 */
let spare: UvReq | undefined;

/** Writes `buf` to `to`; true when libuv still holds it (an asynchronous write). */
function write(k: Conn, to: Handle, from: Handle | undefined, buf: Uint8Array): boolean {
  const req = spare ?? new uv.WriteWrap();
  spare = undefined;
  req.handle = to;
  req.oncomplete = afterWrite;
  const err = to.writeBuffer(req, buf);
  if (err !== 0) {
    spare = req;
    k.l.sideError(k, to, uvError(err, 'write'));
    return false;
  }
  if (to === k.c) k.tx += buf.length;
  else k.upTx += buf.length;
  if (uv.state[uv.kLastWriteWasAsync] === 0) {
    spare = req;
    return false;
  }
  req.buffer = buf; // libuv writes from it later
  if (from !== undefined && to.writeQueueSize > HIGH_WATER) stopReading(k, from);
  return true;
}

function afterWrite(this: UvReq, status: number): void {
  const h = this.handle as Handle;
  const k = h.conn;
  this.buffer = undefined;
  if (k.closed) return;
  if (status < 0) {
    k.l.sideError(k, h, uvError(status, 'write'));
    return;
  }
  if (h.writeQueueSize <= HIGH_WATER) {
    const peer = peerOf(h);
    if (peer !== undefined && k.connected) startReading(k, peer);
  }
}

function shutdown(k: Conn, h: Handle): void {
  if (flagsOf(k, h) & (SHUTTING | CLOSED)) return;
  setFlag(k, h, SHUTTING);
  const req = new uv.ShutdownWrap();
  req.handle = h;
  req.oncomplete = afterShutdown;
  const err = h.shutdown(req);
  if (err !== 0) k.l.sideError(k, h, uvError(err, 'shutdown'));
}

function afterShutdown(this: UvReq, status: number): void {
  const h = this.handle as Handle;
  const k = h.conn;
  if (k.closed) return;
  if (status < 0) {
    k.l.sideError(k, h, uvError(status, 'shutdown'));
    return;
  }
  setFlag(k, h, SHUT);
  k.l.maybeDone(k);
}

function afterConnect(this: UvReq, status: number): void {
  const u = this.handle as Handle;
  const k = u.conn;
  if (k.closed || u !== k.u) return;
  if (status < 0) k.l.dialFailed(k, uvError(status, 'connect', this.address, this.port));
  else k.l.onConnected(k, u);
}

export class RawTcpListener extends SplicingTcpListener<Conn> {
  private server: UvTcp | undefined = undefined;
  readonly now: () => number;
  private acceptLoggedAt = -Infinity;

  constructor(ls: ListenerSpec, log: Logger, now: () => number, hooks?: DataplaneHooks) {
    super(ls, log, hooks);
    const b = uvBindings();
    if (b === undefined) throw new Error('Cannot use the raw TCP engine: this Node has no tcp_wrap binding (use dataplane.engine: net)');
    uv = b;
    this.now = now;
  }

  listen(): Promise<void> {
    const s = new uv.TCP(uv.SERVER);
    const v6 = this.vip.includes(':');
    let err = v6 ? s.bind6(this.vip, this.spec.port, uv.REUSEPORT) : s.bind(this.vip, this.spec.port, uv.REUSEPORT);
    let syscall = 'bind';
    if (err === 0) {
      syscall = 'listen';
      err = s.listen(4096);
    }
    if (err !== 0) {
      s.close();
      return Promise.reject(uvError(err, syscall, this.vip, this.spec.port));
    }
    s.onconnection = (e, h) => this.onConnection(e, h as Handle | undefined);
    this.server = s;
    return Promise.resolve();
  }

  /** Stop accepting: new connections are refused from now on. */
  close(): void {
    this.server?.close();
    this.server = undefined;
  }

  private onConnection(err: number, c: Handle | undefined): void {
    if (err !== 0 || c === undefined) {
      // EMFILE, ENFILE, ENOBUFS: the host is out of something; say so, once per 10 s.
      const now = this.now();
      if (now - this.acceptLoggedAt >= 10_000) {
        this.acceptLoggedAt = now;
        this.log.warn('accept failed', { listener: this.key, err: uvError(err, 'accept') });
      }
      return;
    }
    if (this.overLimit(this.conns.size, this.spec.limits.maxConnections, this.now(), 'connection limit reached: closing new connections')) {
      c.close();
      return;
    }
    const k = new Conn(this, c, this.now());
    c.conn = k;
    c.setNoDelay(true);
    this.conns.add(k);
    // The client is read while we dial (its first bytes wait in `pending`, up to HIGH_WATER):
    // a client that resets meanwhile is seen at once and the dial dropped.
    c.onread = onread;
    c.useUserBuffer(k.cbuf);
    c.readStart();
    this.dial(k);
  }

  protected dial(k: Conn): void {
    if (k.closed) return;
    const b = this.pickBackend(k);
    if (!b) return;
    const u = new uv.TCP(uv.SOCKET) as Handle;
    u.conn = k;
    k.u = u;
    k.uf = 0;
    k.backend = b;
    k.dialAt = this.now();
    const req = new uv.TCPConnectWrap();
    req.handle = u;
    req.oncomplete = afterConnect;
    req.address = b.address;
    req.port = b.port;
    const err = b.address.includes(':') ? u.connect6(req, b.address, b.port) : u.connect(req, b.address, b.port);
    if (err !== 0) this.dialFailed(k, uvError(err, 'connect', b.address, b.port));
  }

  dialFailed(k: Conn, err: NodeJS.ErrnoException): void {
    const u = k.u;
    const b = k.backend;
    if (u === undefined || b === undefined) return;
    closeHandle(k, u, false);
    k.u = undefined;
    this.retryOrGiveUp(k, b, err);
  }

  onConnected(k: Conn, u: Handle): void {
    k.connected = true;
    this.pool.open(k.backend!);
    u.setNoDelay(true);
    u.onread = onread;
    k.ubuf ??= Buffer.allocUnsafe(READ_MIN);
    u.useUserBuffer(k.ubuf);
    u.readStart();
    if (this.spec.proxyProtocol !== 'none') {
      const local: UvAddress = {};
      k.c.getsockname(local);
      const hdr = this.proxyHeaderFor(this.peer(k), local);
      if (hdr) {
        k.hdrLen = hdr.length;
        write(k, u, undefined, hdr);
      }
    }
    const p = k.pending;
    k.pending = undefined;
    k.pendingBytes = 0;
    if (p !== undefined) for (const buf of p) write(k, u, k.c, buf);
    if (k.closed) return;
    // A client that sent FIN before the backend accepted: pass it on now.
    if (k.cf & EOF) shutdown(k, u);
    else if (u.writeQueueSize <= HIGH_WATER) startReading(k, k.c);
  }

  /**
   * A side failed (reset, write error). The backend resetting a connection it had accepted
   * before a byte went either way (it died with it in its accept queue) is a failed dial:
   * retried elsewhere, nothing was delivered, nothing is lost. Otherwise the other side is
   * reset too.
   */
  sideError(k: Conn, h: Handle, err: NodeJS.ErrnoException): void {
    if (k.closed) return;
    if (h === k.u && k.connected && k.upRx === 0 && k.upTx <= k.hdrLen && !(k.cf & (EOF | CLOSED))) {
      k.connected = false;
      k.hdrLen = 0;
      k.upTx = 0;
      this.pool.close(k.backend!);
      stopReading(k, k.c);
      this.dialFailed(k, err);
      return;
    }
    if (this.log.debugEnabled) {
      this.log.debug('connection error', { listener: this.key, side: h === k.c ? 'client' : 'backend', err });
    }
    closeHandle(k, h, false);
    this.finish(k, true);
  }

  /** Both sides sent FIN and got ours: the connection is over. */
  maybeDone(k: Conn): void {
    if ((k.cf & (EOF | SHUT)) === (EOF | SHUT) && (k.uf & (EOF | SHUT)) === (EOF | SHUT)) this.finish(k, false);
  }

  finish(k: Conn, rst: boolean): void {
    if (k.closed) return;
    k.closed = true;
    closeHandle(k, k.c, rst);
    if (k.u !== undefined) closeHandle(k, k.u, rst);
    k.pending = undefined;
    this.conns.delete(k);
    this.bytesRx += k.rx;
    this.bytesTx += k.tx;
    if (k.connected && k.backend) this.pool.close(k.backend);
  }

  protected peer(k: Conn): UvAddress {
    const out: UvAddress = {};
    k.c.getpeername(out);
    return out;
  }
}
