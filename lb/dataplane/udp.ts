// UDP virtual service: one socket bound to VIP:port; one connected upstream socket per
// client address:port (a session) so replies go back to the right client. Sessions expire
// through the data plane's one sweep (timeouts.udpSession), never a timer per session.

import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from '../core/log.ts';
import type { PortSpec } from '../core/types.ts';
import { BackendPool, type BackendState } from './pool.ts';
import { proxyHeader } from './proxyproto.ts';
import type { DataplaneHooks, ListenerSpec, ListenerStats } from './types.ts';

/** Datagrams held per session while its upstream socket connects. */
const MAX_PENDING = 64;

class Session {
  readonly key: string;
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly backend: BackendState;
  readonly up: dgram.Socket;
  last: number;
  pending: Buffer[] | null = [];
  header: Buffer | undefined;
  closed = false;

  constructor(key: string, addr: string, port: number, backend: BackendState, up: dgram.Socket, now: number) {
    this.key = key;
    this.clientAddr = addr;
    this.clientPort = port;
    this.backend = backend;
    this.up = up;
    this.last = now;
  }
}

export class UdpListener {
  readonly key: string;
  service: string;
  readonly vip: string;
  spec: PortSpec;
  readonly pool: BackendPool;
  readonly sessions = new Map<string, Session>();
  private readonly sock: dgram.Socket;
  private readonly log: Logger;
  /** Coarse clock, advanced by the sweep. */
  now: number;
  bytesRx = 0;
  bytesTx = 0;
  limitRejected = 0;
  private limitLoggedAt = -Infinity;
  noBackend = 0;
  private closing = false;

  private readonly hooks: DataplaneHooks | undefined;

  constructor(ls: ListenerSpec, log: Logger, now: number, hooks?: DataplaneHooks) {
    this.hooks = hooks;
    this.key = ls.key;
    this.service = ls.service;
    this.vip = ls.vip;
    this.spec = ls.spec;
    this.log = log;
    this.now = now;
    this.pool = new BackendPool(ls.spec.scheduler, ls.spec.backends);
    this.sock = dgram.createSocket({ type: isIPv6(ls.vip) ? 'udp6' : 'udp4', reusePort: true });
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
        this.sock.on('error', (err) => this.log.error('listener error', { listener: this.key, err }));
        resolve();
      });
    });
  }

  update(ls: ListenerSpec): BackendState[] {
    this.service = ls.service;
    this.spec = ls.spec;
    return this.pool.update(ls.spec.scheduler, ls.spec.backends);
  }

  /**
   * Health changed. A backend going down ends its sessions: UDP gives the client no signal,
   * and a client that keeps sending would otherwise stay on a dead backend for as long as it
   * talks (IPVS's expire_nodest_conn). Its next datagram opens a session on a healthy one.
   */
  setBackendUp(id: string, up: boolean): boolean {
    if (!this.pool.setUp(id, up)) return false;
    if (!up) for (const s of this.sessions.values()) if (s.backend.id === id) this.endSession(s);
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
    for (const s of this.sessions.values()) this.endSession(s);
  }

  /** Live sessions count as connections for drain. */
  get conns(): { size: number } {
    return this.sessions;
  }

  private onMessage(msg: Buffer, addr: string, port: number): void {
    const key = addr + '|' + port;
    let s = this.sessions.get(key);
    if (s === undefined) {
      const made = this.newSession(key, addr, port);
      if (!made) return;
      s = made;
    }
    s.last = this.now;
    this.bytesRx += msg.length;
    const out = s.header ? Buffer.concat([s.header, msg]) : msg;
    if (s.pending !== null) {
      if (s.pending.length < MAX_PENDING) s.pending.push(out);
      return;
    }
    s.up.send(out);
  }

  private newSession(key: string, addr: string, port: number): Session | undefined {
    const max = this.spec.limits.maxUdpSessions;
    if (max > 0 && this.sessions.size >= max) {
      this.limitRejected++;
      if (this.now - this.limitLoggedAt >= 10_000) {
        this.limitLoggedAt = this.now;
        this.log.warn('udp session limit reached: dropping new sessions', { listener: this.key, service: this.service, max, rejected: this.limitRejected });
      }
      return undefined;
    }
    const b = this.pool.scheduler.pick(addr) as BackendState | undefined;
    if (!b) {
      this.noBackend++;
      return undefined;
    }
    const up = dgram.createSocket(isIPv6(b.address) ? 'udp6' : 'udp4');
    const s = new Session(key, addr, port, b, up, this.now);
    s.header = proxyHeader(this.spec.proxyProtocol, {
      srcAddr: addr,
      srcPort: port,
      dstAddr: this.vip,
      dstPort: this.spec.port,
      protocol: 'UDP',
    });
    this.sessions.set(key, s);
    this.pool.open(b);
    if (this.log.debugEnabled) this.log.debug('udp session opened', { listener: this.key, client: key, backend: b.id });
    up.on('message', (reply) => {
      s.last = this.now;
      this.bytesTx += reply.length;
      if (!this.closing) this.sock.send(reply, s.clientPort, s.clientAddr);
    });
    up.on('error', (err) => {
      // ECONNREFUSED: the backend's host answered ICMP port unreachable.
      b.connectFailures++;
      this.hooks?.connectFailure(this.key, b.id, (err as NodeJS.ErrnoException).code ?? err.message);
      if (this.log.debugEnabled) this.log.debug('udp upstream error', { listener: this.key, backend: b.id, err });
      this.endSession(s);
    });
    up.connect(b.port, b.address, () => {
      const p = s.pending;
      s.pending = null;
      if (p && !s.closed) for (const m of p) up.send(m);
    });
    return s;
  }

  private endSession(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    this.sessions.delete(s.key);
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
    for (const s of this.sessions.values()) {
      if (now - s.last >= ttl) {
        if (this.log.debugEnabled) this.log.debug('udp session expired', { listener: this.key, client: s.key });
        this.endSession(s);
      }
    }
  }

  stats(): ListenerStats {
    return {
      key: this.key,
      service: this.service,
      vip: this.vip,
      port: this.spec.port,
      protocol: 'UDP',
      scheduler: this.pool.schedulerName,
      bytesRx: this.bytesRx,
      bytesTx: this.bytesTx,
      udpSessionsActive: this.sessions.size,
      limitRejected: this.limitRejected,
      noBackend: this.noBackend,
      backends: this.pool.stats(),
    };
  }
}
