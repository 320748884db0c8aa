// What every listener of the data plane shares, whatever its protocol or engine: identity,
// spec, backends and scheduler, the counters /metrics and /status read, and the limit check.

import type { Logger } from '../core/log.ts';
import type { PortSpec, Protocol } from '../core/types.ts';
import { BackendPool, type BackendState } from './pool.ts';
import { proxyHeader } from './proxyproto.ts';
import type { DataplaneHooks, ListenerSpec, ListenerStats } from './types.ts';

export abstract class ListenerBase {
  readonly key: string;
  service: string;
  readonly vip: string;
  spec: PortSpec;
  readonly pool: BackendPool;
  protected readonly log: Logger;
  protected readonly hooks: DataplaneHooks | undefined;
  /** Bytes of closed connections / of every datagram, client side (rx: from the client). */
  bytesRx = 0;
  bytesTx = 0;
  /** Connections closed at once / datagrams of new sessions dropped because a limit was reached. */
  limitRejected = 0;
  /** Connections or sessions that found no backend after every try. */
  noBackend = 0;
  private limitLoggedAt = -Infinity;

  constructor(ls: ListenerSpec, log: Logger, hooks: DataplaneHooks | undefined) {
    this.hooks = hooks;
    this.key = ls.key;
    this.service = ls.service;
    this.vip = ls.vip;
    this.spec = ls.spec;
    this.log = log;
    this.pool = new BackendPool(ls.spec.scheduler, ls.spec.backends, ls.spec.affinityTimeout);
  }

  update(ls: ListenerSpec): BackendState[] {
    this.service = ls.service;
    this.spec = ls.spec;
    return this.pool.update(ls.spec.scheduler, ls.spec.backends, ls.spec.affinityTimeout);
  }

  /** Health changed: new connections follow it; established ones are left to finish. */
  setBackendUp(id: string, up: boolean): boolean {
    return this.pool.setUp(id, up);
  }

  /** True (counted, and `msg` logged once per 10 s) when `active` has reached the limit `max` (0: none). */
  /**
   * The PROXY protocol header for a client (`src`) reaching `dst`, where an unknown local
   * address or port is the listener's own; undefined when the port sends none.
   */
  protected proxyHeaderFor(src: { address?: string | undefined; port?: number | undefined }, dst: { address?: string | undefined; port?: number | undefined }): Buffer | undefined {
    if (this.spec.proxyProtocol === 'none') return undefined;
    return proxyHeader(this.spec.proxyProtocol, {
      srcAddr: src.address ?? '',
      srcPort: src.port ?? 0,
      dstAddr: dst.address ?? this.vip,
      dstPort: dst.port ?? this.spec.port,
      protocol: this.spec.protocol,
    });
  }

  protected overLimit(active: number, max: number, now: number, msg: string): boolean {
    if (max <= 0 || active < max) return false;
    this.limitRejected++;
    if (now - this.limitLoggedAt >= 10_000) {
      this.limitLoggedAt = now;
      this.log.warn(msg, { listener: this.key, service: this.service, max, rejected: this.limitRejected });
    }
    return true;
  }

  protected statsWith(protocol: Protocol, bytesRx: number, bytesTx: number, udpSessionsActive: number): ListenerStats {
    return {
      key: this.key,
      service: this.service,
      vip: this.vip,
      port: this.spec.port,
      protocol,
      scheduler: this.pool.schedulerName,
      bytesRx,
      bytesTx,
      udpSessionsActive,
      limitRejected: this.limitRejected,
      noBackend: this.noBackend,
      backends: this.pool.stats(),
    };
  }
}

/** The half-closed bound when a port sets none (HAProxy's client-fin/server-fin). */
export const DEFAULT_HALF_CLOSED = 60_000;

/** The error of a dial the sweep gave up on. */
export function connectTimeoutError(ms: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`connect timeout after ${ms}ms`), { code: 'EDGEPORT_ERR_CONNECT_TIMEOUT' });
}

/** What the sweep keeps per TCP connection, whatever the engine: when it dialed, last moved, half-closed. */
export class ConnTimes {
  /** Bytes seen at the last sweep, and when they last changed. */
  seen = 0;
  lastActive: number;
  /** When the dial in flight started (its connect timeout runs from here). */
  dialAt = 0;
  halfSince = 0;

  constructor(now: number) {
    this.lastActive = now;
  }

  /**
   * `bytes`: the client's bytes so far, both ways. True once idle for `idle` ms, or, after a
   * side sent FIN, inactive for `half` ms: a reply still streaming after the client's FIN is
   * not cut.
   */
  expired(bytes: number, now: number, idle: number, half: number): boolean {
    if (bytes !== this.seen) {
      this.seen = bytes;
      this.lastActive = now;
    }
    return now - this.lastActive >= idle || (this.halfSince > 0 && now - Math.max(this.halfSince, this.lastActive) >= half);
  }
}

/** What the raw and epoll engines keep per connection, besides the two sides themselves. */
export abstract class SplicedConn extends ConnTimes {
  /** The backend side, while one is dialed or connected. */
  abstract readonly u: unknown;
  /** The backend dialed or connected, and every backend tried for this connection. */
  backend: BackendState | undefined = undefined;
  tried: Set<BackendState> | undefined = undefined;
  /** Client bytes read before the backend accepted. */
  pending: Uint8Array[] | undefined = undefined;
  pendingBytes = 0;
  /** Bytes of PROXY header sent to the backend (not client data). */
  hdrLen = 0;
  /** Bytes read from / written to the client, and from / to the backend. */
  rx = 0;
  tx = 0;
  upRx = 0;
  upTx = 0;
  /** The backend accepted and bytes flow (counted in its active connections). */
  connected = false;
  closed = false;
}

/**
 * The raw and epoll engines: a set of connections each spliced to one backend, the same
 * sweep and the same counters, whatever carries the bytes.
 */
export abstract class SplicingTcpListener<K extends SplicedConn> extends ListenerBase {
  readonly conns = new Set<K>();

  /** The dial in flight failed (error, early reset, or the sweep saw its connect timeout): try another backend. */
  abstract dialFailed(k: K, err: NodeJS.ErrnoException): void;
  /** Close both sides (`rst`: with a reset, as a failure is passed on) and count the connection out. */
  abstract finish(k: K, rst: boolean): void;
  /** Pick a backend not tried yet and dial it. */
  protected abstract dial(k: K): void;
  /** The client's address and port. */
  protected abstract peer(k: K): { address?: string | undefined; port?: number | undefined };

  /** The next backend to dial for `k`; undefined, counted and the client reset, when none is left. */
  protected pickBackend(k: K): BackendState | undefined {
    // Only source hashing looks at the client: the others spare the getpeername call.
    const key = this.pool.keyed ? (this.peer(k).address ?? '') : '';
    const b = this.pool.scheduler.pick(key, k.tried) as BackendState | undefined;
    if (b) return b;
    this.noBackend++;
    if (this.log.debugEnabled) this.log.debug('no backend left', { listener: this.key, client: this.peer(k).address });
    this.finish(k, true);
    return undefined;
  }

  /**
   * The dial to `b` failed and its socket is closed: count it, then try another backend (each
   * at most once, at most `retries` more), or reset the client when none is left.
   */
  protected retryOrGiveUp(k: K, b: BackendState, err: NodeJS.ErrnoException): void {
    k.backend = undefined;
    b.connectFailures++;
    this.hooks?.connectFailure(this.key, b.id, err.code ?? err.message);
    (k.tried ??= new Set()).add(b);
    if (this.log.debugEnabled) this.log.debug('connect failed', { listener: this.key, backend: b.id, err });
    if (k.tried.size <= this.spec.retries) this.dial(k);
    else {
      this.noBackend++;
      this.finish(k, true);
    }
  }

  /** Close every connection still open (end of a drain). */
  destroyAll(): void {
    for (const k of this.conns) this.finish(k, false);
  }

  /**
   * Called by the data plane's sweep: connect, idle and half-closed bounds. The half-closed
   * bound is an inactivity bound once a side sent FIN (HAProxy's client-fin/server-fin): a
   * reply that keeps streaming after the client's FIN is not cut.
   */
  sweep(now: number): void {
    const idle = this.spec.timeouts.idle;
    const half = this.spec.timeouts.halfClosed ?? DEFAULT_HALF_CLOSED;
    const connect = this.spec.timeouts.connect;
    for (const k of this.conns) {
      if (!k.connected && k.u !== undefined && now - k.dialAt >= connect) {
        this.dialFailed(k, connectTimeoutError(connect));
      }
      if (k.expired(k.rx + k.tx, now, idle, half)) {
        if (this.log.debugEnabled) this.log.debug('connection timed out', { listener: this.key });
        this.finish(k, false);
      }
    }
  }

  stats(): ListenerStats {
    let rx = this.bytesRx;
    let tx = this.bytesTx;
    for (const k of this.conns) {
      rx += k.rx;
      tx += k.tx;
    }
    return this.statsWith('TCP', rx, tx, 0);
  }
}
