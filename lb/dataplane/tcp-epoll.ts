// TCP virtual service on the data plane's own epoll loop (epoll.ts): the same behaviour as
// tcp.ts and tcp-raw.ts (dial with retries before any byte is forwarded, splice both ways
// with backpressure, half-close, resets passed on, connect/idle/half-closed bounds from the
// data plane's one sweep), with the socket calls made through koffi and no libuv handle,
// wrapper object or C++-to-JS callback per event. dataplane.engine: epoll.
//
// Per connection: one Conn and two Sides (each Side is the epoll target of its descriptor).
// Reads go into one buffer shared by every connection and are sent on at once; only bytes
// the peer cannot take now (a partial send) or before the backend accepted are copied and
// queued, so an idle connection holds no buffer at all. A side whose peer has more than
// HIGH_WATER queued stops reading until it drains, as in the other engines.

import type { Logger } from '../core/log.ts';
import {
  AF_INET6,
  EAGAIN,
  EINPROGRESS,
  EINTR,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EpollLoop,
  type EpollTarget,
  fromSockaddr,
  IPPROTO_IPV6,
  IPPROTO_TCP,
  IPV6_V6ONLY,
  MSG_NOSIGNAL,
  SHUT_WR,
  SO_ERROR,
  SO_LINGER,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddr,
  SOL_SOCKET,
  TCP_NODELAY,
} from './epoll.ts';
import { SplicedConn, SplicingTcpListener } from './listener.ts';
import type { BackendState } from './pool.ts';
import type { DataplaneHooks, ListenerSpec } from './types.ts';
import { uvError } from './uv.ts';

/** Bytes queued to one side before the other side stops reading (net's highWaterMark). */
const HIGH_WATER = 64 * 1024;
/** The one read buffer. A side reads at most READS_PER_EVENT times in a row, then lets others run. */
const READ_SIZE = 64 * 1024;
const READS_PER_EVENT = 8;
/** Connections accepted per readiness of a listener before others get a turn. */
const ACCEPTS_PER_EVENT = 64;
/** How long accepting pauses when the host is out of descriptors or buffers. */
const ACCEPT_PAUSE_MS = 100;
const ECONNABORTED = 103;
const ECONNREFUSED = 111;
const EMPTY = Buffer.alloc(0);

// Side flags.
const EOF = 1; // the side sent FIN (we read EOF)
const SHUT = 2; // our FIN to the side is sent
const SHUTTING = 4; // our FIN waits for the side's queue to drain
const STOPPED = 8; // reading stopped for backpressure (or while dialing)
const CLOSED = 16; // descriptor closed
const CONNECTING = 32; // backend side: connect in flight
const QUIET = 64; // out of the epoll set after a hangup, until it needs something

let loop: EpollLoop;
let readBuf: Buffer;
let readAt = 0;
/** Scratch for socket options and addresses (one thread: never in use twice at once). */
let scratch: Buffer;
let scratchAt = 0;
let lenBuf: Buffer;
let lenAt = 0;
const ONE = 0; // scratch offsets: an int 1 at 0, an int 0 at 4, linger {1, 0} at 8, an int result at 16
const ZERO = 4;
const LINGER0 = 8;
const INT_OUT = 16;
const ADDR = 32;

function init(l: EpollLoop): void {
  if (loop === l) return;
  loop = l;
  readBuf = Buffer.alloc(READ_SIZE);
  readAt = l.c.address(readBuf);
  scratch = Buffer.alloc(64);
  scratchAt = l.c.address(scratch);
  scratch.writeInt32LE(1, ONE);
  scratch.writeInt32LE(1, LINGER0);
  scratch.writeInt32LE(0, LINGER0 + 4);
  lenBuf = Buffer.alloc(4);
  lenAt = l.c.address(lenBuf);
}

function errnoError(syscall: string, address?: string, port?: number): NodeJS.ErrnoException {
  return uvError(-loop.c.errno(), syscall, address, port);
}

/** A backend's sockaddr, made once per backend. */
const addrs = new WeakMap<BackendState, { sa: Buffer; at: number; family: number }>();

function backendAddr(b: BackendState): { sa: Buffer; at: number; family: number } {
  let a = addrs.get(b);
  if (a === undefined) {
    const sa = sockaddr(b.address, b.port, loop.c.if_nametoindex);
    a = { sa, at: loop.c.address(sa), family: sa.readUInt16LE(0) };
    addrs.set(b, a);
  }
  return a;
}

class Side implements EpollTarget {
  readonly k: Conn;
  readonly fd: number;
  f = 0;
  /** The events asked of epoll now. */
  ev = 0;
  /** Bytes the side could not take yet, oldest first from outHead (no Array.shift). */
  out: Buffer[] | undefined = undefined;
  outHead = 0;
  outBytes = 0;

  constructor(k: Conn, fd: number) {
    this.k = k;
    this.fd = fd;
  }

  onEvents(_fd: number, events: number): void {
    const k = this.k;
    if (k.closed) return;
    if (this.f & CONNECTING) {
      connectDone(k, this, events);
      return;
    }
    if (events & EPOLLOUT && this.outBytes > 0) flush(k, this);
    if (k.closed || this.f & CLOSED) return;
    if (this.ev & EPOLLIN) {
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readSide(k, this);
      return;
    }
    if (events & (EPOLLERR | EPOLLHUP)) hangup(k, this);
  }
}

class Conn extends SplicedConn {
  readonly l: EpollTcpListener;
  readonly c: Side;
  u: Side | undefined = undefined;

  constructor(l: EpollTcpListener, fd: number, now: number) {
    super(now);
    this.l = l;
    this.c = new Side(this, fd);
  }
}

function peerOf(k: Conn, s: Side): Side | undefined {
  return s === k.c ? k.u : k.c;
}

/** Ask epoll for what the side needs now: reads unless stopped or at EOF, writes while bytes wait. */
function interest(s: Side): void {
  if (s.f & CLOSED) return;
  const want = (s.f & (EOF | STOPPED) ? 0 : EPOLLIN) | (s.outBytes > 0 || s.f & CONNECTING ? EPOLLOUT : 0);
  if (s.f & QUIET) {
    // Out of the set since a hangup: back in once it needs something.
    if (want === 0) return;
    s.f &= ~QUIET;
    s.ev = want;
    const e = loop.add(s.fd, want, s);
    if (e !== 0) s.k.l.sideError(s.k, s, uvError(e, 'epoll_ctl'));
    return;
  }
  if (want === s.ev) return;
  s.ev = want;
  loop.mod(s.fd, want);
}

function readSide(k: Conn, s: Side): void {
  const c = loop.c;
  const client = s === k.c;
  for (let i = 0; i < READS_PER_EVENT; i++) {
    const n = c.recv(s.fd, readAt, READ_SIZE, 0);
    if (n > 0) {
      if (client) k.rx += n;
      else k.upRx += n;
      if (client && !k.connected) {
        (k.pending ??= []).push(Buffer.from(readBuf.subarray(0, n)));
        k.pendingBytes += n;
        if (k.pendingBytes > HIGH_WATER) stopReading(s);
      } else {
        const peer = peerOf(k, s)!;
        if (!(peer.f & (CLOSED | SHUTTING | SHUT))) send(k, peer, s, readBuf, readAt, n);
      }
      if (k.closed || s.f & (STOPPED | CLOSED) || n < READ_SIZE) return;
      continue;
    }
    if (n === 0) {
      onEof(k, s);
      return;
    }
    const e = c.errno();
    if (e === EAGAIN) return;
    if (e === EINTR) continue;
    k.l.sideError(k, s, uvError(-e, 'read'));
    return;
  }
}

function onEof(k: Conn, s: Side): void {
  s.f |= EOF;
  if (k.halfSince === 0) k.halfSince = k.l.now();
  const peer = k.connected ? peerOf(k, s)! : undefined;
  // Both sides sent FIN and nothing is queued either way: closing both sends our FINs after
  // the bytes in flight (nothing is left unread, so no reset), with no shutdown call.
  if (peer !== undefined && peer.f & EOF && s.outBytes === 0 && peer.outBytes === 0) {
    k.l.finish(k, false);
    return;
  }
  interest(s);
  if (peer === undefined) return;
  // Half-close travels on: the peer gets our FIN once every byte before it is sent.
  shutdown(k, peer);
}

/**
 * ERR or HUP on a side that is not reading: an error is passed on; otherwise the side leaves
 * the epoll set (a hangup is reported until the descriptor closes) until it needs something.
 */
function hangup(k: Conn, s: Side): void {
  const err = socketError(s.fd);
  if (err !== 0) {
    k.l.sideError(k, s, uvError(-err, 'read'));
    return;
  }
  s.f |= QUIET;
  s.ev = 0;
  loop.remove(s.fd);
}

function stopReading(s: Side): void {
  s.f |= STOPPED;
  interest(s);
}

function startReading(s: Side): void {
  if (!(s.f & STOPPED) || s.f & (EOF | CLOSED)) return;
  s.f &= ~STOPPED;
  interest(s);
}

/** Sends `n` bytes at `at` (in `buf`) to `to`, queuing a copy of what it cannot take now. */
function send(k: Conn, to: Side, from: Side | undefined, buf: Uint8Array, at: number, n: number): void {
  let sent = 0;
  if (to.outBytes === 0) {
    sent = loop.c.send(to.fd, at, n, MSG_NOSIGNAL);
    if (sent === n) {
      countSent(k, to, n);
      return;
    }
    if (sent < 0) {
      const e = loop.c.errno();
      if (e !== EAGAIN && e !== EINTR) {
        k.l.sideError(k, to, uvError(-e, 'write'));
        return;
      }
      sent = 0;
    }
  }
  const rest = Buffer.from(buf.subarray(sent, n));
  (to.out ??= []).push(rest);
  to.outBytes += rest.length;
  countSent(k, to, n);
  interest(to);
  if (from !== undefined && to.outBytes > HIGH_WATER) stopReading(from);
}

/** Counts bytes sent or queued to a side (a failed send counts none). */
function countSent(k: Conn, to: Side, n: number): void {
  if (to === k.c) k.tx += n;
  else k.upTx += n;
}

/** The side can take more: send what is queued, then pass on a FIN that waited, and read the peer again. */
function flush(k: Conn, s: Side): void {
  const q = s.out!;
  const c = loop.c;
  while (s.outHead < q.length) {
    const b = q[s.outHead]!;
    const r = c.send(s.fd, c.address(b), b.length, MSG_NOSIGNAL);
    if (r < 0) {
      const e = c.errno();
      if (e === EAGAIN || e === EINTR) break;
      k.l.sideError(k, s, uvError(-e, 'write'));
      return;
    }
    s.outBytes -= r;
    if (r < b.length) {
      q[s.outHead] = b.subarray(r);
      break;
    }
    q[s.outHead++] = EMPTY;
  }
  if (s.outBytes === 0) {
    s.out = undefined;
    s.outHead = 0;
  } else if (s.outHead > 64 && s.outHead * 2 > q.length) {
    // A queue that never drains (a slow reader of a long stream) must not grow without end.
    q.splice(0, s.outHead);
    s.outHead = 0;
  }
  interest(s);
  if (s.outBytes > 0) {
    if (s.outBytes > HIGH_WATER) return;
  } else if (s.f & SHUTTING) {
    shutdownNow(k, s);
    if (k.closed) return;
  }
  const peer = peerOf(k, s);
  if (peer !== undefined && k.connected) startReading(peer);
}

function shutdown(k: Conn, s: Side): void {
  if (s.f & (SHUTTING | SHUT | CLOSED)) return;
  s.f |= SHUTTING;
  if (s.outBytes === 0) shutdownNow(k, s);
}

function shutdownNow(k: Conn, s: Side): void {
  if (loop.c.shutdown(s.fd, SHUT_WR) < 0) {
    k.l.sideError(k, s, errnoError('shutdown'));
    return;
  }
  s.f = (s.f & ~SHUTTING) | SHUT;
  k.l.maybeDone(k);
}

function closeSide(s: Side, rst: boolean): void {
  if (s.f & CLOSED) return;
  s.f |= CLOSED;
  // As raw's reset(): once our FIN is on its way, close without a reset.
  if (rst && !(s.f & (SHUT | SHUTTING))) loop.c.setsockopt(s.fd, SOL_SOCKET, SO_LINGER, scratchAt + LINGER0, 8);
  loop.close(s.fd);
  s.out = undefined;
  s.outHead = 0;
  s.outBytes = 0;
}

/**
 * The dial's socket is ready. Writable with no error or hangup means connected (HAProxy reads
 * it the same way): only a failure costs the SO_ERROR call that says why.
 */
function connectDone(k: Conn, u: Side, events: number): void {
  if (u !== k.u) return;
  let err = 0;
  if (events & (EPOLLERR | EPOLLHUP) || !(events & EPOLLOUT)) {
    err = socketError(u.fd);
    // A hangup with no error on a socket that never connected: refused all the same.
    if (err === 0) err = ECONNREFUSED;
  }
  const b = k.backend!;
  u.f &= ~CONNECTING;
  if (err !== 0) k.l.dialFailed(k, uvError(-err, 'connect', b.address, b.port));
  else k.l.onConnected(k, u);
}

/** The pending error of a socket (SO_ERROR, which also clears it); 0 for none. */
function socketError(fd: number): number {
  scratch.writeInt32LE(0, INT_OUT);
  lenBuf.writeUInt32LE(4, 0);
  loop.c.getsockopt(fd, SOL_SOCKET, SO_ERROR, scratchAt + INT_OUT, lenAt);
  return scratch.readInt32LE(INT_OUT);
}

export class EpollTcpListener extends SplicingTcpListener<Conn> implements EpollTarget {
  private fd = -1;
  readonly now: () => number;
  private acceptLoggedAt = -Infinity;

  constructor(ls: ListenerSpec, log: Logger, now: () => number, hooks?: DataplaneHooks) {
    super(ls, log, hooks);
    const l = EpollLoop.get();
    if (l === undefined) throw new Error('Cannot use the epoll TCP engine here (it needs Linux x64, the main thread and koffi): use dataplane.engine: raw');
    init(l);
    this.now = now;
  }

  listen(): Promise<void> {
    const c = loop.c;
    const sa = sockaddr(this.vip, this.spec.port, loop.c.if_nametoindex);
    const fd = c.socket(sa.readUInt16LE(0), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Promise.reject(errnoError('socket', this.vip, this.spec.port));
    c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, scratchAt + ONE, 4);
    c.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, scratchAt + ONE, 4);
    // As libuv does: an IPv6 listener takes IPv4 clients too, whatever net.ipv6.bindv6only says.
    if (sa.readUInt16LE(0) === AF_INET6) c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, scratchAt + ZERO, 4);
    let syscall = 'bind';
    let ok = c.bind(fd, c.address(sa), sa.length) === 0;
    if (ok) {
      syscall = 'listen';
      ok = c.listen(fd, 4096) === 0;
    }
    if (!ok) {
      const err = errnoError(syscall, this.vip, this.spec.port);
      c.close(fd);
      return Promise.reject(err);
    }
    const e = loop.add(fd, EPOLLIN, this);
    if (e !== 0) {
      c.close(fd);
      return Promise.reject(uvError(e, 'listen', this.vip, this.spec.port));
    }
    this.fd = fd;
    return Promise.resolve();
  }

  /** Stop accepting: new connections are refused from now on. */
  close(): void {
    if (this.fd < 0) return;
    loop.close(this.fd);
    this.fd = -1;
  }

  /** The listening socket is ready: accept what waits (a bounded batch). */
  onEvents(): void {
    const c = loop.c;
    for (let i = 0; i < ACCEPTS_PER_EVENT && this.fd >= 0; i++) {
      const fd = c.accept4(this.fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const e = c.errno();
        if (e === EAGAIN) return;
        if (e === EINTR || e === ECONNABORTED) continue;
        // EMFILE, ENFILE, ENOBUFS: the host is out of something; say so, once per 10 s, and
        // stop polling the listener for a while (it stays readable: polling it would spin).
        const now = this.now();
        if (now - this.acceptLoggedAt >= 10_000) {
          this.acceptLoggedAt = now;
          this.log.warn('accept failed', { listener: this.key, err: uvError(-e, 'accept') });
        }
        this.pauseAccepting();
        return;
      }
      this.accepted(fd);
    }
  }

  private pauseAccepting(): void {
    const fd = this.fd;
    loop.mod(fd, 0);
    setTimeout(() => {
      if (this.fd === fd) loop.mod(fd, EPOLLIN);
    }, ACCEPT_PAUSE_MS).unref();
  }

  private accepted(fd: number): void {
    const c = loop.c;
    if (this.overLimit(this.conns.size, this.spec.limits.maxConnections, this.now(), 'connection limit reached: closing new connections')) {
      c.close(fd);
      return;
    }
    const k = new Conn(this, fd, this.now());
    c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, scratchAt + ONE, 4);
    // The client is read while we dial (its first bytes wait in `pending`, up to HIGH_WATER):
    // a client that resets meanwhile is seen at once and the dial dropped.
    const e = loop.add(fd, EPOLLIN, k.c);
    if (e !== 0) {
      c.close(fd);
      return;
    }
    k.c.ev = EPOLLIN;
    this.conns.add(k);
    this.dial(k);
  }

  protected dial(k: Conn): void {
    if (k.closed) return;
    const c = loop.c;
    const b = this.pickBackend(k);
    if (!b) return;
    k.backend = b;
    k.dialAt = this.now();
    const a = backendAddr(b);
    const fd = c.socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      const err = errnoError('connect', b.address, b.port);
      k.u = undefined;
      this.retryOrGiveUp(k, b, err);
      return;
    }
    const u = new Side(k, fd);
    k.u = u;
    c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, scratchAt + ONE, 4);
    const r = c.connect(fd, a.at, a.sa.length);
    const e = r === 0 ? 0 : c.errno();
    if (r !== 0 && e !== EINPROGRESS) {
      c.close(fd);
      u.f = CLOSED;
      this.dialFailed(k, uvError(-e, 'connect', b.address, b.port));
      return;
    }
    u.f = CONNECTING;
    u.ev = EPOLLOUT;
    const ae = loop.add(fd, EPOLLOUT, u);
    if (ae !== 0) {
      c.close(fd);
      u.f = CLOSED;
      this.dialFailed(k, uvError(ae, 'connect', b.address, b.port));
    }
  }

  dialFailed(k: Conn, err: NodeJS.ErrnoException): void {
    const u = k.u;
    const b = k.backend;
    if (u === undefined || b === undefined) return;
    closeSide(u, false);
    k.u = undefined;
    this.retryOrGiveUp(k, b, err);
  }

  onConnected(k: Conn, u: Side): void {
    k.connected = true;
    this.pool.open(k.backend!);
    interest(u);
    if (this.spec.proxyProtocol !== 'none') {
      const hdr = this.proxyHeaderFor(this.peer(k), this.local(k));
      if (hdr) {
        k.hdrLen = hdr.length;
        send(k, u, undefined, hdr, loop.c.address(hdr), hdr.length);
        // A send that failed here was a reset before any byte: closed, or dialing another backend.
        if (k.closed || k.u !== u) return;
      }
    }
    const p = k.pending;
    k.pending = undefined;
    k.pendingBytes = 0;
    if (p !== undefined) {
      for (let i = 0; i < p.length; i++) {
        const buf = p[i]!;
        send(k, u, k.c, buf, loop.c.address(buf), buf.length);
        if (k.closed) return;
        if (k.u !== u) {
          // Reset before a byte got through: another backend is being dialed; it gets these.
          k.pending = p.slice(i);
          for (const b of k.pending) k.pendingBytes += b.length;
          return;
        }
      }
    }
    // A client that sent FIN before the backend accepted: pass it on now.
    if (k.c.f & EOF) shutdown(k, u);
    else if (u.outBytes <= HIGH_WATER) startReading(k.c);
  }

  /**
   * A side failed (reset, write error). The backend resetting a connection it had accepted
   * before a byte went either way (it died with it in its accept queue) is a failed dial:
   * retried elsewhere, nothing was delivered, nothing is lost. Otherwise the other side is
   * reset too.
   */
  sideError(k: Conn, s: Side, err: NodeJS.ErrnoException): void {
    if (k.closed) return;
    // (Not once the backend sent FIN, or the client got ours: a reset seen later on a side
    // that no longer reads is not a failed dial.)
    if (s === k.u && k.connected && k.upRx === 0 && k.upTx <= k.hdrLen && !(k.c.f & (EOF | CLOSED | SHUT | SHUTTING)) && !(s.f & EOF)) {
      k.connected = false;
      k.hdrLen = 0;
      k.upTx = 0;
      this.pool.close(k.backend!);
      stopReading(k.c);
      this.dialFailed(k, err);
      return;
    }
    if (this.log.debugEnabled) {
      this.log.debug('connection error', { listener: this.key, side: s === k.c ? 'client' : 'backend', err });
    }
    closeSide(s, false);
    this.finish(k, true);
  }

  /** Both sides sent FIN and got ours: the connection is over. */
  maybeDone(k: Conn): void {
    const u = k.u;
    if (u === undefined) return;
    if ((k.c.f & (EOF | SHUT)) === (EOF | SHUT) && (u.f & (EOF | SHUT)) === (EOF | SHUT)) this.finish(k, false);
  }

  finish(k: Conn, rst: boolean): void {
    if (k.closed) return;
    k.closed = true;
    closeSide(k.c, rst);
    if (k.u !== undefined) closeSide(k.u, rst);
    k.pending = undefined;
    this.conns.delete(k);
    this.bytesRx += k.rx;
    this.bytesTx += k.tx;
    if (k.connected && k.backend) this.pool.close(k.backend);
  }

  protected peer(k: Conn): { address?: string; port?: number } {
    return this.addressOf(k.c.fd, true);
  }

  private local(k: Conn): { address?: string; port?: number } {
    return this.addressOf(k.c.fd, false);
  }

  private addressOf(fd: number, peer: boolean): { address?: string; port?: number } {
    lenBuf.writeUInt32LE(28, 0);
    const r = peer ? loop.c.getpeername(fd, scratchAt + ADDR, lenAt) : loop.c.getsockname(fd, scratchAt + ADDR, lenAt);
    if (r !== 0) return {};
    const a = fromSockaddr(scratch.subarray(ADDR, ADDR + 28));
    return a === undefined ? {} : { address: a.address, port: a.port };
  }
}
