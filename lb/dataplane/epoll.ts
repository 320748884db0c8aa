// An epoll loop of our own on the data plane's thread, with the socket calls made through
// koffi (FFI to libc): the ground under the epoll TCP engine (tcp-epoll.ts). Linux only.
//
// Why: a connection through libuv handles costs Node about 60k user-space instructions
// (wrapper objects, weak handles, a C++-to-JS callback per event) and the kernel about 10k
// more than HAProxy (libuv registers with epoll through io_uring and removes each socket
// before closing it). A prototype of this loop served 0.82-0.98x HAProxy's new connections/s
// where the raw libuv engine served 0.68x (same run, same host).
//
// Living beside libuv: the loop blocks in its own epoll_wait, whose set also holds libuv's
// own epoll descriptor (found by where a probe socket is registered), so anything libuv watches (admin requests, IPC, signals, worker
// messages, thread-pool results) wakes it. It then yields: it handles the events it got,
// schedules itself with setImmediate and returns, and libuv runs one turn (its timers, its
// ready descriptors, nextTicks and promises) before the loop blocks again. libuv's timers
// cannot wake it, so it blocks at most MAX_BLOCK_MS: a Node timer fires at most that late.
// The loop runs only while something is registered (a listener or a connection), like a ref'd
// handle.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { uvBindings, type UvTcp } from './uv.ts';

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
/** The longest the loop blocks: the most a Node timer fires late while the loop runs. */
const MAX_BLOCK_MS = 10;

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
    errno: () => koffi.errno(),
    address: (b: Uint8Array) => Number(koffi.address(b)),
  };
  return libc;
}

/** What the loop calls when a registered descriptor is ready. */
export interface EpollTarget {
  onEvents(fd: number, events: number): void;
}

/**
 * Finds libuv's epoll descriptor for this thread: the eventpoll descriptor whose watch list
 * (/proc/self/fdinfo) holds `probeFd`, a socket libuv watches. The process has several (Node's
 * platform threads run loops of their own), and the main loop's is not the first made.
 */
export function epollWatching(probeFd: number): number | undefined {
  for (const name of readdirSync('/proc/self/fd')) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
      if (target !== 'anon_inode:[eventpoll]') continue;
      info = readFileSync(`/proc/self/fdinfo/${name}`, 'latin1');
    } catch {
      continue;
    }
    if (new RegExp(`^tfd:\\s+${probeFd}\\s`, 'm').test(info)) return Number(name);
  }
  return undefined;
}

/** How many turns the loop looks for libuv's descriptor before it settles for the 10 ms bound. */
const FIND_TURNS = 20;

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
  private scheduled = false;
  private readonly run = (): void => this.turn();

  /**
   * libuv's epoll descriptor once found (-1 before). Found through a probe: a listening socket
   * libuv watches, made with the loop; libuv adds it to its epoll set in its next poll phase,
   * before the loop's first turn, which looks it up and closes it.
   */
  uvFd = -1;
  private probe: UvTcp | undefined;
  private findTurns = 0;

  private constructor(c: Libc, ep: number, probe: UvTcp) {
    this.c = c;
    this.ep = ep;
    this.probe = probe;
    this.eventsAt = c.address(this.events);
    this.oneAt = c.address(this.one);
  }

  private findLibuv(): void {
    const probe = this.probe!;
    const fd = epollWatching((probe as unknown as { fd: number }).fd);
    if (fd !== undefined) {
      this.one.writeUInt32LE(EPOLLIN, 0);
      this.one.writeUInt32LE(fd, 4);
      this.one.writeUInt32LE(0, 8);
      if (this.c.epoll_ctl(this.ep, EPOLL_CTL_ADD, fd, this.oneAt) === 0) this.uvFd = fd;
    }
    if (this.uvFd >= 0 || ++this.findTurns >= FIND_TURNS) {
      probe.close();
      this.probe = undefined;
    }
  }

  private static instance: EpollLoop | null | undefined;

  /** The loop of this thread, or undefined where it cannot run (not Linux, not the main thread, no koffi). */
  static get(): EpollLoop | undefined {
    if (EpollLoop.instance !== undefined) return EpollLoop.instance ?? undefined;
    EpollLoop.instance = null;
    if (process.platform !== 'linux' || process.arch !== 'x64' || !isMainThread) return undefined;
    try {
      const uv = uvBindings();
      if (uv === undefined) return undefined;
      const probe = new uv.TCP(uv.SERVER);
      if (probe.bind('127.0.0.1', 0, 0) !== 0 || probe.listen(1) !== 0 || typeof (probe as unknown as { fd: unknown }).fd !== 'number') {
        probe.close();
        return undefined;
      }
      const c = load();
      const ep = c.epoll_create1(SOCK_CLOEXEC);
      if (ep < 0) {
        probe.close();
        return undefined;
      }
      probe.unref(); // the probe alone keeps no process alive
      EpollLoop.instance = new EpollLoop(c, ep, probe);
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
    if (!this.scheduled) {
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
      this.registered--;
    }
    this.c.close(fd);
  }

  /** Forget `fd` without closing it: for a descriptor that was never registered, or is shared. */
  remove(fd: number): void {
    if (this.targets[fd] === undefined) return;
    this.c.epoll_ctl(this.ep, EPOLL_CTL_DEL, fd, this.oneAt);
    this.targets[fd] = undefined;
    this.registered--;
  }

  /** One turn: wait for events (or libuv's), handle them, and let libuv run before the next. */
  private turn(): void {
    this.scheduled = false;
    if (this.registered === 0) return;
    if (this.probe !== undefined) this.findLibuv();
    const c = this.c;
    const n = c.epoll_wait(this.ep, this.eventsAt, MAX_EVENTS, MAX_BLOCK_MS);
    const ev = this.events;
    for (let i = 0; i < n; i++) {
      const at = i * EPOLL_EVENT_SIZE;
      const fd = ev.readInt32LE(at + 4);
      const t = this.targets[fd];
      if (t !== undefined && ev.readUInt32LE(at + 8) === this.gens[fd]) t.onEvents(fd, ev.readUInt32LE(at));
    }
    if (this.registered > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }
}

/** sockaddr_in or sockaddr_in6 for an address and port. */
export function sockaddr(address: string, port: number): Buffer {
  if (isIPv6(address)) {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(AF_INET6, 0);
    b.writeUInt16BE(port, 2);
    ipv6Bytes(address).copy(b, 8);
    return b;
  }
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) b[4 + i] = Number(parts[i]);
  return b;
}

function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  let s = address;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const dot = s.lastIndexOf('.');
  if (dot >= 0) {
    const colon = s.lastIndexOf(':');
    const v4 = s.slice(colon + 1).split('.').map(Number);
    s = `${s.slice(0, colon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i] ?? '0', 16), i * 2);
  return out;
}

/** The address and port in a sockaddr_in or sockaddr_in6, as Node writes them. */
export function fromSockaddr(b: Buffer): { address: string; port: number; family: string } | undefined {
  const family = b.readUInt16LE(0);
  const port = b.readUInt16BE(2);
  if (family === AF_INET) return { address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port, family: 'IPv4' };
  if (family !== AF_INET6) return undefined;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(8 + i * 2));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return { address: `::ffff:${b[20]}.${b[21]}.${b[22]}.${b[23]}`, port, family: 'IPv6' };
  }
  // RFC 5952: the longest run of two or more zero groups (the first of equals) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  const address = best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
  return { address, port, family: 'IPv6' };
}
