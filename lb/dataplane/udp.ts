// UDP virtual service: one socket bound to VIP:port; one connected upstream socket per
// client address:port (a session) so replies go back to the right client. Sessions expire
// through the data plane's one sweep (timeouts.udpSession), never a timer per session.
//
// Hot path (STYLE.md): a datagram allocates nothing here. Sessions are found by the client's
// port (a small-integer Map key) and then its address, not by a string built per datagram;
// upstream sockets share module-level handlers (no closures per session); the PROXY header
// goes out as a second buffer of the same datagram rather than a concatenated copy.

import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from '../core/log.ts';
import { ListenerBase } from './listener.ts';
import type { BackendState } from './pool.ts';
import type { DataplaneHooks, ListenerSpec, ListenerStats } from './types.ts';

/** Datagrams held per session while its upstream socket connects. */
const MAX_PENDING = 64;

/** A session's upstream socket carries its session (for the shared handlers). */
interface Upstream extends dgram.Socket {
  session: Session;
}

class Session {
  readonly l: UdpListener;
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly backend: BackendState;
  readonly up: Upstream;
  /** The next session whose client uses the same port (from another address). */
  next: Session | undefined = undefined;
  last: number;
  /** Datagrams from the client while the upstream socket connects (null once connected). */
  pending: Buffer[] | null = [];
  header: Buffer | undefined = undefined;
  closed = false;

  constructor(l: UdpListener, addr: string, port: number, backend: BackendState, up: Upstream, now: number) {
    this.l = l;
    this.clientAddr = addr;
    this.clientPort = port;
    this.backend = backend;
    this.up = up;
    this.last = now;
  }

  get key(): string {
    return `${this.clientAddr}|${this.clientPort}`;
  }
}

function onUpstreamMessage(this: Upstream, reply: Buffer): void {
  this.session.l.reply(this.session, reply);
}

function onUpstreamError(this: Upstream, err: Error): void {
  this.session.l.upstreamError(this.session, err);
}

function onUpstreamConnect(this: Upstream): void {
  const s = this.session;
  const p = s.pending;
  s.pending = null;
  if (p !== null && !s.closed) for (const m of p) send(s, m);
}

function send(s: Session, msg: Buffer): void {
  if (s.header === undefined) s.up.send(msg);
  else s.up.send([s.header, msg]);
}

export class UdpListener extends ListenerBase {
  /** Sessions by client port; sessions sharing a port chain through `next`. */
  private readonly sessions = new Map<number, Session>();
  /** Live sessions (they count as connections for drain). */
  readonly conns = { size: 0 };
  private readonly sock: dgram.Socket;
  /** Coarse clock, advanced by the sweep. */
  now: number;
  private closing = false;
  /** Bound: from now on every lookup is of a client's address, an IP literal. */
  private bound = false;

  constructor(ls: ListenerSpec, log: Logger, now: number, hooks?: DataplaneHooks) {
    super(ls, log, hooks);
    this.now = now;
    // Replies go to the client's address, always an IP literal: the default lookup would defer
    // each one to the next tick (dgram keeps bind() asynchronous that way, so bind keeps it).
    const lookup = (address: string, family: number, cb: (err: Error | null, address: string, family: number) => void): void => {
      if (this.bound) cb(null, address, family);
      else process.nextTick(cb, null, address, family);
    };
    this.sock = dgram.createSocket({
      type: isIPv6(ls.vip) ? 'udp6' : 'udp4',
      reusePort: true,
      lookup: lookup as unknown as dgram.SocketOptions['lookup'],
    });
    this.sock.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.closing = true;
        this.sock.close(); // a failed bind still holds a descriptor
        reject(err);
      };
      this.sock.once('error', onError);
      this.sock.bind({ address: this.vip, port: this.spec.port }, () => {
        this.sock.off('error', onError);
        this.bound = true;
        this.sock.on('error', (err) => this.log.error('listener error', { listener: this.key, err }));
        resolve();
      });
    });
  }

  /**
   * Health changed. A backend going down ends its sessions: UDP gives the client no signal,
   * and a client that keeps sending would otherwise stay on a dead backend for as long as it
   * talks (IPVS's expire_nodest_conn). Its next datagram opens a session on a healthy one.
   */
  override setBackendUp(id: string, up: boolean): boolean {
    if (!super.setBackendUp(id, up)) return false;
    if (!up) this.each((s) => s.backend.id === id && this.endSession(s));
    return true;
  }

  /**
   * Unbind at once so a new listener (or another appliance) can take the VIP:port. Sessions
   * end with it: their replies could no longer leave from the VIP.
   */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.sock.close();
    this.destroyAll();
  }

  destroyAll(): void {
    this.each((s) => this.endSession(s));
  }

  /** Every session; `fn` may end the one it is given. */
  private each(fn: (s: Session) => unknown): void {
    for (const head of this.sessions.values()) {
      for (let s: Session | undefined = head; s !== undefined; ) {
        const next: Session | undefined = s.next;
        fn(s);
        s = next;
      }
    }
  }

  private onMessage(msg: Buffer, addr: string, port: number): void {
    let s = this.sessions.get(port);
    while (s !== undefined && s.clientAddr !== addr) s = s.next;
    if (s === undefined) {
      s = this.newSession(addr, port);
      if (s === undefined) return;
    }
    s.last = this.now;
    this.bytesRx += msg.length;
    if (s.pending !== null) {
      if (s.pending.length < MAX_PENDING) s.pending.push(msg);
      return;
    }
    send(s, msg);
  }

  /** A reply from the backend: back to the client, from the VIP. */
  reply(s: Session, reply: Buffer): void {
    s.last = this.now;
    this.bytesTx += reply.length;
    if (!this.closing) this.sock.send(reply, s.clientPort, s.clientAddr);
  }

  upstreamError(s: Session, err: Error): void {
    // ECONNREFUSED: the backend's host answered ICMP port unreachable.
    const b = s.backend;
    b.connectFailures++;
    this.hooks?.connectFailure(this.key, b.id, (err as NodeJS.ErrnoException).code ?? err.message);
    if (this.log.debugEnabled) this.log.debug('udp upstream error', { listener: this.key, backend: b.id, err });
    this.endSession(s);
  }

  private newSession(addr: string, port: number): Session | undefined {
    if (this.overLimit(this.conns.size, this.spec.limits.maxUdpSessions, this.now, 'udp session limit reached: dropping new sessions')) return undefined;
    const b = this.pool.scheduler.pick(addr) as BackendState | undefined;
    if (!b) {
      this.noBackend++;
      return undefined;
    }
    const up = dgram.createSocket(isIPv6(b.address) ? 'udp6' : 'udp4') as Upstream;
    const s = new Session(this, addr, port, b, up, this.now);
    up.session = s;
    s.header = this.proxyHeaderFor({ address: addr, port }, {});
    s.next = this.sessions.get(port);
    this.sessions.set(port, s);
    this.conns.size++;
    this.pool.open(b);
    if (this.log.debugEnabled) this.log.debug('udp session opened', { listener: this.key, client: s.key, backend: b.id });
    up.on('message', onUpstreamMessage);
    up.on('error', onUpstreamError);
    up.on('connect', onUpstreamConnect);
    up.connect(b.port, b.address);
    return s;
  }

  private endSession(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    const head = this.sessions.get(s.clientPort);
    if (head === s) {
      if (s.next === undefined) this.sessions.delete(s.clientPort);
      else this.sessions.set(s.clientPort, s.next);
    } else {
      let prev = head;
      while (prev !== undefined && prev.next !== s) prev = prev.next;
      if (prev !== undefined) prev.next = s.next;
    }
    this.conns.size--;
    this.pool.close(s.backend);
    try {
      s.up.close();
    } catch {
      // already closed
    }
  }

  sweep(now: number): void {
    this.now = now;
    const ttl = this.spec.timeouts.udpSession;
    this.each((s) => {
      if (now - s.last >= ttl) {
        if (this.log.debugEnabled) this.log.debug('udp session expired', { listener: this.key, client: s.key });
        this.endSession(s);
      }
    });
  }

  stats(): ListenerStats {
    return this.statsWith('UDP', this.bytesRx, this.bytesTx, this.conns.size);
  }
}
