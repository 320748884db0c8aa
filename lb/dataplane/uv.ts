// The libuv TCP handles under node:net, as Node's own net.js uses them: tcp_wrap (TCP,
// TCPConnectWrap) and stream_wrap (WriteWrap, ShutdownWrap, the shared read/write state).
// Not a public API (process.binding, DEP0111, documentation-only): the raw TCP engine
// (tcp-raw.ts) is built on it because the net.Socket stream layer costs more user-space
// work per connection than the whole rest of the proxy (npm run bench: node-net vs
// node-raw). Node is pinned (package.json), and `uvBindings()` returns undefined when a
// Node lacks these bindings or they change shape: the data plane then uses node:net.

import { getSystemErrorMessage, getSystemErrorName } from 'node:util';

export interface UvReq {
  handle: UvTcp;
  oncomplete: (status: number) => void;
  /** WriteWrap: the buffer of a write libuv still holds (kept alive until it completes). */
  buffer?: Uint8Array | undefined;
  address?: string;
  port?: number;
}

export interface UvAddress {
  address?: string;
  family?: string;
  port?: number;
}

/** A libuv TCP handle (tcp_wrap.TCP). Methods return 0 or a negative libuv error. */
export interface UvTcp {
  /**
   * A read: its size (or error) in state[kReadBytesOrError]. With useUserBuffer the bytes are
   * at the start of that buffer (`ab` is undefined), and a buffer returned here is where the
   * next read goes.
   */
  onread: (ab: ArrayBuffer | undefined) => Uint8Array | undefined;
  onconnection: (err: number, h: UvTcp | undefined) => void;
  readonly writeQueueSize: number;
  bind(addr: string, port: number, flags: number): number;
  bind6(addr: string, port: number, flags: number): number;
  listen(backlog: number): number;
  connect(req: UvReq, addr: string, port: number): number;
  connect6(req: UvReq, addr: string, port: number): number;
  getpeername(out: UvAddress): number;
  getsockname(out: UvAddress): number;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: UvReq, buf: Uint8Array): number;
  /**
   * Read into `buf` instead of a fresh 64 KiB allocation per read. libuv keeps a raw pointer:
   * the caller keeps `buf` referenced while it is the handle's read buffer.
   */
  useUserBuffer(buf: Uint8Array): void;
  shutdown(req: UvReq): number;
  setNoDelay(on: boolean): number;
  /** Close with RST (uv_tcp_close_reset); fails (EINVAL) once a shutdown is pending. */
  reset(): number;
  close(): void;
}

export interface UvBindings {
  TCP: new (type: number) => UvTcp;
  TCPConnectWrap: new () => UvReq;
  WriteWrap: new () => UvReq;
  ShutdownWrap: new () => UvReq;
  SOCKET: number;
  SERVER: number;
  REUSEPORT: number;
  /** streamBaseState and its indices: the result of the last read and write. */
  state: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

export const UV_EOF = -4095;

let cached: UvBindings | null | undefined;

/** The bindings, or undefined when this Node does not have them as expected. */
export function uvBindings(): UvBindings | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding;
    const tcp = binding('tcp_wrap') as {
      TCP: UvBindings['TCP'];
      TCPConnectWrap: UvBindings['TCPConnectWrap'];
      constants: { SOCKET: number; SERVER: number; UV_TCP_REUSEPORT: number };
    };
    const sw = binding('stream_wrap') as {
      WriteWrap: UvBindings['WriteWrap'];
      ShutdownWrap: UvBindings['ShutdownWrap'];
      streamBaseState: Int32Array;
      kReadBytesOrError: number;
      kArrayBufferOffset: number;
      kLastWriteWasAsync: number;
    };
    const proto = tcp.TCP.prototype as unknown as Record<string, unknown>;
    const methods = ['bind', 'bind6', 'listen', 'connect', 'connect6', 'getpeername', 'getsockname', 'readStart', 'readStop', 'writeBuffer', 'useUserBuffer', 'shutdown', 'setNoDelay', 'reset', 'close'];
    if (methods.some((m) => typeof proto[m] !== 'function')) return undefined;
    if (!(sw.streamBaseState instanceof Int32Array) || typeof tcp.constants.UV_TCP_REUSEPORT !== 'number') return undefined;
    cached = {
      TCP: tcp.TCP,
      TCPConnectWrap: tcp.TCPConnectWrap,
      WriteWrap: sw.WriteWrap,
      ShutdownWrap: sw.ShutdownWrap,
      SOCKET: tcp.constants.SOCKET,
      SERVER: tcp.constants.SERVER,
      REUSEPORT: tcp.constants.UV_TCP_REUSEPORT,
      state: sw.streamBaseState,
      kReadBytesOrError: sw.kReadBytesOrError,
      kArrayBufferOffset: sw.kArrayBufferOffset,
      kLastWriteWasAsync: sw.kLastWriteWasAsync,
    };
  } catch {
    cached = null;
  }
  return cached ?? undefined;
}

/** A libuv error as Node reports it: `connect ECONNREFUSED 10.0.0.1:80`, with code and errno. */
export function uvError(errno: number, syscall: string, address?: string, port?: number): NodeJS.ErrnoException {
  const code = safe(() => getSystemErrorName(errno), `UV${errno}`);
  const where = address === undefined ? '' : port === undefined ? ` ${address}` : ` ${address}:${port}`;
  const detail = syscall === 'listen' || syscall === 'bind' ? `: ${safe(() => getSystemErrorMessage(errno), 'error')}` : '';
  const err = new Error(`${syscall} ${code}${detail}${where}`) as NodeJS.ErrnoException & { address?: string; port?: number };
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  if (address !== undefined) err.address = address;
  if (port !== undefined) err.port = port;
  return err;
}

function safe(fn: () => string, fallback: string): string {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
