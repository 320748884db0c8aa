// TCP virtual service: accept on VIP:port, dial a backend (retrying others on refusal or
// timeout before any byte is forwarded), then splice both ways with backpressure.
// Timeouts (idle, half-closed) are enforced by the data plane's one sweep, not per-socket timers.

import net from 'node:net';
import type { Logger } from '../core/log.ts';
import type { PortSpec } from '../core/types.ts';
import { BackendPool, type BackendState } from './pool.ts';
import { proxyHeader } from './proxyproto.ts';
import type { DataplaneHooks, ListenerSpec, ListenerStats } from './types.ts';

const DEFAULT_HALF_CLOSED = 60_000;

class Conn {
  readonly l: TcpListener;
  readonly client: net.Socket;
  readonly clientIp: string;
  upstream: net.Socket | undefined;
  backend: BackendState | undefined;
  tried: Set<BackendState> | undefined;
  /** Bytes seen at the last sweep, and when they last changed. */
  seen = 0;
  lastActive: number;
  halfSince = 0;
  /** The backend accepted and bytes flow (counted in the backend's active connections). */
  connected = false;
  closed = false;

  constructor(l: TcpListener, client: net.Socket, now: number) {
    this.l = l;
    this.client = client;
    this.clientIp = client.remoteAddress ?? '';
    this.lastActive = now;
  }
}

export class TcpListener {
  readonly key: string;
  service: string;
  readonly vip: string;
  spec: PortSpec;
  readonly pool: BackendPool;
  readonly conns = new Set<Conn>();
  private readonly server: net.Server;
  private readonly log: Logger;
  private now: () => number;
  bytesRx = 0;
  bytesTx = 0;
  limitRejected = 0;
  private limitLoggedAt = -Infinity;
  noBackend = 0;

  private readonly hooks: DataplaneHooks | undefined;

  constructor(ls: ListenerSpec, log: Logger, now: () => number, hooks?: DataplaneHooks) {
    this.hooks = hooks;
    this.key = ls.key;
    this.service = ls.service;
    this.vip = ls.vip;
    this.spec = ls.spec;
    this.log = log;
    this.now = now;
    this.pool = new BackendPool(ls.spec.scheduler, ls.spec.backends);
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (c) =>
      this.onConnection(c),
    );
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.vip, port: this.spec.port, reusePort: true, backlog: 4096 }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.error('listener error', { listener: this.key, err }));
        resolve();
      });
    });
  }

  update(ls: ListenerSpec): BackendState[] {
    this.service = ls.service;
    this.spec = ls.spec;
    return this.pool.update(ls.spec.scheduler, ls.spec.backends);
  }

  /** Health changed: new connections follow it; established ones are left to finish. */
  setBackendUp(id: string, up: boolean): boolean {
    return this.pool.setUp(id, up);
  }

  /** Stop accepting: new connections are refused from now on. */
  close(): void {
    this.server.close();
  }

  /** Close every connection still open (end of a drain). */
  destroyAll(): void {
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream?.destroy();
    }
  }

  private onConnection(client: net.Socket): void {
    const max = this.spec.limits.maxConnections;
    if (max > 0 && this.conns.size >= max) {
      this.limitRejected++;
      const now = this.now();
      if (now - this.limitLoggedAt >= 10_000) {
        this.limitLoggedAt = now;
        this.log.warn('connection limit reached: closing new connections', { listener: this.key, service: this.service, max, rejected: this.limitRejected });
      }
      client.destroy();
      return;
    }
    // Paused, not pauseOnConnect: the socket still reads up to its highWaterMark while we
    // dial, so a client that resets meanwhile is seen at once (and the dial dropped) rather
    // than after every connect try; its first bytes wait in the buffer for pipe().
    client.pause();
    const c = new Conn(this, client, this.now());
    this.conns.add(c);
    client.on('error', (err) => this.onSideError(c, err, client));
    client.on('close', () => this.onSideClose(c, client));
    client.once('end', () => this.onEnd(c));
    this.dial(c);
  }

  private dial(c: Conn): void {
    if (c.closed) return;
    const b = this.pool.scheduler.pick(c.clientIp, c.tried) as BackendState | undefined;
    if (!b) {
      this.noBackend++;
      if (this.log.debugEnabled) this.log.debug('no backend left', { listener: this.key, client: c.clientIp });
      c.client.resetAndDestroy();
      return;
    }
    const up = net.connect({ host: b.address, port: b.port, noDelay: true, allowHalfOpen: true });
    c.upstream = up;
    c.backend = b;
    up.setTimeout(this.spec.timeouts.connect);
    const onFail = (err: Error) => {
      up.off('connect', onConnect);
      up.off('timeout', onTimeout);
      up.destroy();
      b.connectFailures++;
      this.hooks?.connectFailure(this.key, b.id, (err as NodeJS.ErrnoException).code ?? err.message);
      c.upstream = undefined;
      c.backend = undefined;
      (c.tried ??= new Set()).add(b);
      if (this.log.debugEnabled) this.log.debug('connect failed', { listener: this.key, backend: b.id, err });
      if (c.tried.size <= this.spec.retries) this.dial(c);
      else {
        this.noBackend++;
        c.client.resetAndDestroy();
      }
    };
    const onTimeout = () =>
      onFail(Object.assign(new Error(`connect timeout after ${this.spec.timeouts.connect}ms`), { code: 'EDGEPORT_ERR_CONNECT_TIMEOUT' }));
    const onConnect = () => {
      up.off('error', onFail);
      up.off('timeout', onTimeout);
      up.setTimeout(0);
      if (c.closed) {
        up.destroy();
        return;
      }
      c.connected = true;
      this.pool.open(b);
      up.on('error', (err) => this.onSideError(c, err, up));
      up.on('close', () => this.onSideClose(c, up));
      up.once('end', () => this.onEnd(c));
      const hdr = proxyHeader(this.spec.proxyProtocol, {
        srcAddr: c.clientIp,
        srcPort: c.client.remotePort ?? 0,
        dstAddr: c.client.localAddress ?? this.vip,
        dstPort: c.client.localPort ?? this.spec.port,
        protocol: 'TCP',
      });
      if (hdr) up.write(hdr);
      c.client.pipe(up);
      up.pipe(c.client);
    };
    up.once('error', onFail);
    up.once('timeout', onTimeout);
    up.once('connect', onConnect);
  }

  private onEnd(c: Conn): void {
    if (c.halfSince === 0) c.halfSince = this.now();
  }

  /** A reset (or any error) on one side resets the other. */
  private onSideError(c: Conn, err: Error, side: net.Socket): void {
    if (this.log.debugEnabled) {
      this.log.debug('connection error', { listener: this.key, side: side === c.client ? 'client' : 'backend', err });
    }
    const other = side === c.client ? c.upstream : c.client;
    if (other && !other.destroyed) other.resetAndDestroy();
  }

  private onSideClose(c: Conn, side: net.Socket): void {
    if (!c.connected) {
      // The client left while we were still dialing.
      c.upstream?.destroy();
      this.finish(c);
      return;
    }
    const other = side === c.client ? c.upstream : c.client;
    if (other && !other.destroyed) {
      // One side is fully closed: whatever the other still holds can't be delivered.
      if (side.errored) other.resetAndDestroy();
      else other.end();
    }
    if (c.client.destroyed && c.upstream?.destroyed) this.finish(c);
  }

  private finish(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c);
    this.bytesRx += c.client.bytesRead;
    this.bytesTx += c.client.bytesWritten;
    if (c.connected && c.backend) this.pool.close(c.backend);
  }

  /**
   * Called by the data plane's sweep: idle and half-closed bounds. The half-closed bound is
   * an inactivity bound once a side sent FIN (HAProxy's client-fin/server-fin): a reply that
   * keeps streaming after the client's FIN is not cut.
   */
  sweep(now: number): void {
    const idle = this.spec.timeouts.idle;
    const half = this.spec.timeouts.halfClosed ?? DEFAULT_HALF_CLOSED;
    for (const c of this.conns) {
      const seen = c.client.bytesRead + c.client.bytesWritten;
      if (seen !== c.seen) {
        c.seen = seen;
        c.lastActive = now;
      }
      if (now - c.lastActive >= idle || (c.halfSince > 0 && now - Math.max(c.halfSince, c.lastActive) >= half)) {
        if (this.log.debugEnabled) this.log.debug('connection timed out', { listener: this.key });
        c.client.destroy();
        c.upstream?.destroy();
      }
    }
  }

  stats(): ListenerStats {
    let rx = this.bytesRx;
    let tx = this.bytesTx;
    for (const c of this.conns) {
      rx += c.client.bytesRead;
      tx += c.client.bytesWritten;
    }
    return {
      key: this.key,
      service: this.service,
      vip: this.vip,
      port: this.spec.port,
      protocol: 'TCP',
      scheduler: this.pool.schedulerName,
      bytesRx: rx,
      bytesTx: tx,
      udpSessionsActive: 0,
      limitRejected: this.limitRejected,
      noBackend: this.noBackend,
      backends: this.pool.stats(),
    };
  }
}
