// Raw Ethernet frames on one interface: an AF_PACKET socket through koffi (FFI to libc).
// Linux only. Calls are synchronous: the ARP worker blocks in recv() (with SO_RCVTIMEO so it
// can notice stop requests) on its own thread; the main thread only ever calls send(), which
// does not block on a packet socket. koffi is loaded on first use, so that importing this
// module costs nothing where ARP is not used.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { formatMac, parseMac } from './arp.ts';

type Koffi = typeof import('koffi');

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOCKADDR_LL_LEN = 20;
export const PACKET_OUTGOING = 4;

export const EAGAIN = 11;
export const EINTR = 4;
export const ENETDOWN = 100;

interface Libc {
  koffi: Koffi;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, val: Buffer, len: number): number;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: Buffer): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  close(fd: number): number;
  strerror(errno: number): string;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  if (process.platform !== 'linux') throw new Error(`Cannot open a packet socket: ARP mode needs Linux (this is ${process.platform})`);
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    recvfrom: lib.func('long recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrlen)'),
    sendto: lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
    close: lib.func('int close(int fd)'),
    strerror: lib.func('const char *strerror(int errnum)'),
  };
  return libc;
}

function htons(n: number): number {
  return ((n & 0xff) << 8) | ((n >> 8) & 0xff);
}

function sockaddrLl(ifindex: number, protocol: number, mac?: Uint8Array): Buffer {
  const b = Buffer.alloc(SOCKADDR_LL_LEN);
  b.writeUInt16LE(AF_PACKET, 0);
  b.writeUInt16BE(protocol, 2); // sll_protocol is network order
  b.writeInt32LE(ifindex, 4);
  if (mac) {
    b[11] = 6; // sll_halen
    b.set(mac.subarray(0, 6), 12);
  }
  return b;
}

/** Index and MAC of a network interface, from /sys/class/net. Throws with the interface named. */
export function interfaceInfo(iface: string): { index: number; mac: string } {
  if (!/^[^/\s]{1,15}$/.test(iface) || iface === '.' || iface === '..') throw new TypeError(`Cannot use interface "${iface}": not an interface name`);
  try {
    const index = Number(readFileSync(`/sys/class/net/${iface}/ifindex`, 'utf8').trim());
    const mac = readFileSync(`/sys/class/net/${iface}/address`, 'utf8').trim();
    if (!parseMac(mac)) throw new Error(`it has no Ethernet address ("${mac}")`);
    return { index, mac };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (e as Error).message;
    throw new Error(`Cannot use interface "${iface}": ${why}`, { cause: e });
  }
}

export class PacketSocketError extends Error {
  readonly errno: number;
  constructor(message: string, errno: number) {
    super(message);
    this.name = 'PacketSocketError';
    this.errno = errno;
  }
}

/**
 * An AF_PACKET/SOCK_RAW socket bound to one interface. `protocol` ETH_P_ARP receives ARP
 * frames; 0 receives nothing (a send-only socket).
 */
export class PacketSocket {
  readonly ifindex: number;
  private fd: number;
  private readonly lib: Libc;
  private readonly from = Buffer.alloc(SOCKADDR_LL_LEN);
  private readonly fromLen = Buffer.alloc(4);
  /** sll_pkttype of the last frame received (PACKET_OUTGOING = 4 for frames this host sent). */
  pkttype = 0;

  constructor(opts: { ifindex: number; protocol: number; recvTimeoutMs?: number }) {
    this.lib = load();
    this.ifindex = opts.ifindex;
    const fd = this.lib.socket(AF_PACKET, SOCK_RAW, htons(opts.protocol));
    if (fd < 0) throw this.error('open a packet socket');
    this.fd = fd;
    if (this.lib.bind(fd, sockaddrLl(opts.ifindex, opts.protocol), SOCKADDR_LL_LEN) < 0) {
      const err = this.error(`bind a packet socket to interface index ${opts.ifindex}`);
      this.close();
      throw err;
    }
    if (opts.recvTimeoutMs !== undefined) {
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(BigInt(Math.floor(opts.recvTimeoutMs / 1000)), 0);
      tv.writeBigInt64LE(BigInt((opts.recvTimeoutMs % 1000) * 1000), 8);
      if (this.lib.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) < 0) {
        const err = this.error('set SO_RCVTIMEO');
        this.close();
        throw err;
      }
    }
  }

  private error(what: string): PacketSocketError {
    const errno = this.lib.koffi.errno();
    const hint = errno === 1 ? ' (needs CAP_NET_RAW: run as root or grant the capability)' : '';
    return new PacketSocketError(`Cannot ${what}: ${this.lib.strerror(errno)}${hint}`, errno);
  }

  /** Blocks until a frame arrives or the receive timeout passes. Returns its length, or -errno. */
  recv(buf: Buffer): number {
    this.fromLen.writeUInt32LE(SOCKADDR_LL_LEN, 0);
    const n = this.lib.recvfrom(this.fd, buf, buf.length, 0, this.from, this.fromLen);
    if (n < 0) return -this.lib.koffi.errno();
    this.pkttype = this.from[10]!;
    return n;
  }

  /** Sends one frame to `dstMac` (default: the frame's own Ethernet destination). Throws on failure. */
  send(frame: Buffer, dstMac: Uint8Array = frame.subarray(0, 6)): void {
    const addr = sockaddrLl(this.ifindex, (frame[12]! << 8) | frame[13]!, dstMac);
    const n = this.lib.sendto(this.fd, frame, frame.length, 0, addr, SOCKADDR_LL_LEN);
    if (n < 0) throw this.error(`send a frame to ${formatMac(dstMac)}`);
  }

  /** Like send() but returns -errno instead of throwing (the worker's reply path). */
  trySend(frame: Buffer): number {
    const addr = sockaddrLl(this.ifindex, (frame[12]! << 8) | frame[13]!, frame.subarray(0, 6));
    const n = this.lib.sendto(this.fd, frame, frame.length, 0, addr, SOCKADDR_LL_LEN);
    return n < 0 ? -this.lib.koffi.errno() : n;
  }

  close(): void {
    if (this.fd >= 0) {
      this.lib.close(this.fd);
      this.fd = -1;
    }
  }
}
