// An epoll loop of our own on the data plane's thread, with the socket calls made through
// koffi (FFI to libc): the ground under the epoll TCP engine (tcp-epoll.ts). Linux only.
//
// Why: a connection through libuv handles costs Node about 60k user-space instructions
// (wrapper objects, weak handles, a C++-to-JS callback per event) and the kernel about 10k
// more than HAProxy (libuv registers with epoll through io_uring and removes each socket
// before closing it). A prototype of this loop served 0.82-0.98x HAProxy's new connections/s
// where the raw libuv engine served 0.68x (same run, same host).
//
// Living beside libuv, on one thread, with libuv in charge of blocking: while the loop has
// events it runs as a setImmediate callback (epoll_wait with no wait, handle the batch, again
// on the next turn), so libuv's poll does not block either and runs its own timers, ready
// descriptors and completed writes between turns. When a turn finds nothing, the loop hands
// its epoll descriptor to libuv to watch (a dup of it opened as a pipe handle) and libuv
// blocks as usual: the read libuv then attempts on an epoll descriptor fails, and that
// failure is the wake-up (the handle is closed, the loop turns again). So a Node timer or a
// write completion is never held back by the loop, and an idle data plane costs no wake-ups.
// The loop runs only while something is registered (a listener or a connection), like a
// ref'd handle.

import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { formatIp, parseIPv6 } from '../ipam/address.ts';
import type { UvTcp } from './uv.ts';

type Koffi = typeof import('koffi');

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_LINGER = 13;
export const SO_REUSEPORT = 15;
export const IPPROTO_TCP = 6;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const TCP_NODELAY = 1;
export const SHUT_WR = 1;
export const MSG_NOSIGNAL = 0x4000;
export const EINTR = 4;
export const EAGAIN = 11;
export const EINPROGRESS = 115;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLL_EVENT_SIZE = 12; // packed on x86-64: u32 events, u64 data (the fd in its low half)
const MAX_EVENTS = 256;
const F_DUPFD_CLOEXEC = 1030;
/** When the epoll descriptor cannot be handed to libuv (no descriptor left for its dup), the loop polls at this period. */
const ARM_RETRY_MS = 5;

/** libc's socket calls. Pointers are passed as addresses (numbers): koffi converts those cheaply. */
export interface Libc {
  koffi: Koffi;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: number, len: number): number;
  listen(fd: number, backlog: number): number;
  accept4(fd: number, addr: number, len: number, flags: number): number;
  connect(fd: number, addr: number, len: number): number;
  recv(fd: number, buf: number, len: number, flags: number): number;
  send(fd: number, buf: number, len: number, flags: number): number;
  shutdown(fd: number, how: number): number;
  close(fd: number): number;
  setsockopt(fd: number, level: number, name: number, val: number, len: number): number;
  getsockopt(fd: number, level: number, name: number, val: number, len: number): number;
  getsockname(fd: number, addr: number, len: number): number;
  getpeername(fd: number, addr: number, len: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(ep: number, op: number, fd: number, ev: number): number;
  epoll_wait(ep: number, evs: number, max: number, timeout: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  if_nametoindex(name: string): number;
  errno(): number;
  address(b: Uint8Array): number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const P = 'uintptr_t';
  libc = {
    koffi,
    socket: lib.func('int socket(int, int, int)'),
    bind: lib.func(`int bind(int, ${P}, uint32_t)`),
    listen: lib.func('int listen(int, int)'),
    accept4: lib.func(`int accept4(int, ${P}, ${P}, int)`),
    connect: lib.func(`int connect(int, ${P}, uint32_t)`),
    recv: lib.func(`long recv(int, ${P}, size_t, int)`),
    send: lib.func(`long send(int, ${P}, size_t, int)`),
    shutdown: lib.func('int shutdown(int, int)'),
    close: lib.func('int close(int)'),
    setsockopt: lib.func(`int setsockopt(int, int, int, ${P}, uint32_t)`),
    getsockopt: lib.func(`int getsockopt(int, int, int, ${P}, ${P})`),
    getsockname: lib.func(`int getsockname(int, ${P}, ${P})`),
    getpeername: lib.func(`int getpeername(int, ${P}, ${P})`),
    epoll_create1: lib.func('int epoll_create1(int)'),
    epoll_ctl: lib.func(`int epoll_ctl(int, int, int, ${P})`),
    epoll_wait: lib.func(`int epoll_wait(int, ${P}, int, int)`),
    fcntl: lib.func('int fcntl(int, int, int)'),
    if_nametoindex: lib.func('unsigned int if_nametoindex(const char *)'),
    errno: () => koffi.errno(),
    address: (b: Uint8Array) => Number(koffi.address(b)),
  };
  return libc;
}

/** What the loop calls when a registered descriptor is ready. */
export interface EpollTarget {
  onEvents(fd: number, events: number): void;
}

export class EpollLoop {
  readonly c: Libc;
  private readonly ep: number;
  private readonly events = Buffer.alloc(EPOLL_EVENT_SIZE * MAX_EVENTS);
  private readonly eventsAt: number;
  private readonly one = Buffer.alloc(EPOLL_EVENT_SIZE);
  private readonly oneAt: number;
  /** The target of each registered descriptor, by descriptor. */
  private readonly targets: (EpollTarget | undefined)[] = [];
  /**
   * A count per descriptor number, bumped at each registration and carried in the event's data:
   * an event still queued for a descriptor closed earlier in the same batch, whose number a new
   * socket took meanwhile, does not reach the new socket's target.
   */
  private gens = new Uint32Array(1024);
  private registered = 0;
  /** A turn is queued (setImmediate), or running. */
  private scheduled = false;
  /** While idle: the pipe handle through which libuv watches the epoll descriptor. */
  private armed: UvTcp | undefined = undefined;
  private readonly wakeBuf = Buffer.alloc(16);
  private readonly pipe: UvPipeBinding;
  private readonly run = (): void => this.turn();
  private readonly wake = (): undefined => {
    this.disarm();
    this.turn();
    return undefined;
  };

  private constructor(c: Libc, ep: number, pipe: UvPipeBinding) {
    this.c = c;
    this.ep = ep;
    this.pipe = pipe;
    this.eventsAt = c.address(this.events);
    this.oneAt = c.address(this.one);
  }

  private static instance: EpollLoop | null | undefined;

  /** The loop of this thread, or undefined where it cannot run (not Linux x64, not the main thread, no koffi or pipe binding). */
  static get(): EpollLoop | undefined {
    if (EpollLoop.instance !== undefined) return EpollLoop.instance ?? undefined;
    EpollLoop.instance = null;
    if (process.platform !== 'linux' || process.arch !== 'x64' || !isMainThread) return undefined;
    try {
      const pipe = pipeBinding();
      if (pipe === undefined) return undefined;
      const c = load();
      const ep = c.epoll_create1(SOCK_CLOEXEC);
      if (ep < 0) return undefined;
      EpollLoop.instance = new EpollLoop(c, ep, pipe);
    } catch {
      EpollLoop.instance = null;
    }
    return EpollLoop.instance ?? undefined;
  }

  add(fd: number, events: number, t: EpollTarget): number {
    if (fd >= this.gens.length) {
      const g = new Uint32Array(Math.max(fd + 1, this.gens.length * 2));
      g.set(this.gens);
      this.gens = g;
    }
    const gen = (this.gens[fd]! + 1) >>> 0;
    this.gens[fd] = gen;
    this.one.writeUInt32LE(events, 0);
    this.one.writeUInt32LE(fd, 4);
    this.one.writeUInt32LE(gen, 8);
    if (this.c.epoll_ctl(this.ep, EPOLL_CTL_ADD, fd, this.oneAt) < 0) return -this.c.errno();
    this.targets[fd] = t;
    this.registered++;
    // While armed, the new descriptor's events wake libuv; during a turn, the turn reschedules.
    if (!this.scheduled && this.armed === undefined) {
      this.scheduled = true;
      setImmediate(this.run);
    }
    return 0;
  }

  mod(fd: number, events: number): void {
    this.one.writeUInt32LE(events, 0);
    this.one.writeUInt32LE(fd, 4);
    this.one.writeUInt32LE(this.gens[fd]!, 8);
    this.c.epoll_ctl(this.ep, EPOLL_CTL_MOD, fd, this.oneAt);
  }

  /** Forget `fd` and close it (closing removes it from the epoll set). */
  close(fd: number): void {
    if (this.targets[fd] !== undefined) {
      this.targets[fd] = undefined;
      this.unregistered();
    }
    this.c.close(fd);
  }

  /** Take `fd` out of the epoll set, open: it reports nothing until added again. */
  remove(fd: number): void {
    if (this.targets[fd] === undefined) return;
    this.c.epoll_ctl(this.ep, EPOLL_CTL_DEL, fd, this.oneAt);
    this.targets[fd] = undefined;
    this.unregistered();
  }

  private unregistered(): void {
    // Nothing left: the armed handle must not keep the process alive.
    if (--this.registered === 0) this.disarm();
  }

  /** One turn: take the ready events without waiting and handle them; then again, or arm. */
  private turn(): void {
    this.scheduled = false;
    if (this.registered === 0) return;
    this.scheduled = true; // an add() during the turn queues nothing: the end of the turn decides
    const n = this.c.epoll_wait(this.ep, this.eventsAt, MAX_EVENTS, 0);
    const ev = this.events;
    try {
      for (let i = 0; i < n; i++) {
        const at = i * EPOLL_EVENT_SIZE;
        const fd = ev.readInt32LE(at + 4);
        const t = this.targets[fd];
        if (t !== undefined && ev.readUInt32LE(at + 8) === this.gens[fd]) t.onEvents(fd, ev.readUInt32LE(at));
      }
    } finally {
      this.scheduled = false;
      if (this.registered > 0) {
        if (n > 0) {
          this.scheduled = true;
          setImmediate(this.run);
        } else this.arm();
      }
    }
  }

  /** Idle: let libuv watch the epoll descriptor and block as it would without this loop. */
  private arm(): void {
    const fd = this.c.fcntl(this.ep, F_DUPFD_CLOEXEC, 3);
    const p = fd < 0 ? undefined : new this.pipe.Pipe(this.pipe.SOCKET);
    if (p === undefined || p.open(fd) !== 0) {
      // Cannot hand it over (out of descriptors?): poll again a little later, not in a spin.
      p?.close();
      if (fd >= 0) this.c.close(fd);
      this.scheduled = true;
      setTimeout(this.run, ARM_RETRY_MS);
      return;
    }
    p.onread = this.wake;
    p.useUserBuffer(this.wakeBuf);
    p.readStart();
    this.armed = p;
  }

  private disarm(): void {
    const p = this.armed;
    if (p === undefined) return;
    this.armed = undefined;
    p.close(); // closes the dup, not the loop's descriptor
  }
}

interface UvPipeBinding {
  Pipe: new (type: number) => UvTcp & { open(fd: number): number };
  SOCKET: number;
}

/** libuv's pipe handle (pipe_wrap), not a public API (see uv.ts); undefined when it has another shape. */
function pipeBinding(): UvPipeBinding | undefined {
  const pw = (process as unknown as { binding(name: string): unknown }).binding('pipe_wrap') as {
    Pipe?: UvPipeBinding['Pipe'];
    constants?: { SOCKET?: number };
  };
  const proto = pw.Pipe?.prototype as unknown as Record<string, unknown> | undefined;
  if (pw.Pipe === undefined || typeof pw.constants?.SOCKET !== 'number' || proto === undefined) return undefined;
  if (['open', 'readStart', 'useUserBuffer', 'close'].some((m) => typeof proto[m] !== 'function')) return undefined;
  return { Pipe: pw.Pipe, SOCKET: pw.constants.SOCKET };
}

/**
 * sockaddr_in or sockaddr_in6 for an address and port. An IPv6 zone (`fe80::1%eth0`, or
 * `%2`) goes into sin6_scope_id: a number as it is, a name through `ifIndex`.
 */
export function sockaddr(address: string, port: number, ifIndex: (name: string) => number = () => 0): Buffer {
  if (isIPv6(address)) {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(AF_INET6, 0);
    b.writeUInt16BE(port, 2);
    ipv6Bytes(address).copy(b, 8);
    const pct = address.indexOf('%');
    if (pct >= 0) {
      const zone = address.slice(pct + 1);
      b.writeUInt32LE(/^\d+$/.test(zone) ? Number(zone) : ifIndex(zone) >>> 0, 24);
    }
    return b;
  }
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) b[4 + i] = Number(parts[i]);
  return b;
}

/** The 16 bytes of an IPv6 literal (its zone, if any, left out). */
function ipv6Bytes(address: string): Buffer {
  const pct = address.indexOf('%');
  let v = parseIPv6(pct >= 0 ? address.slice(0, pct) : address) ?? 0n;
  const out = Buffer.alloc(16);
  for (let i = 15; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** The address and port in a sockaddr_in or sockaddr_in6, as Node writes them (IPv6 as RFC 5952, as inet_ntop). */
export function fromSockaddr(b: Buffer): { address: string; port: number; family: string } | undefined {
  const family = b.readUInt16LE(0);
  const port = b.readUInt16BE(2);
  if (family === AF_INET) return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port, family: 'IPv4' };
  if (family !== AF_INET6) return undefined;
  let v = 0n;
  for (let i = 8; i < 24; i++) v = (v << 8n) | BigInt(b[i]!);
  return { address: formatIp(v, 6), port, family: 'IPv6' };
}
