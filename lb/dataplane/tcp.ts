// TCP virtual service: accept on VIP:port, dial a backend (retrying others on refusal or
// timeout before any byte is forwarded), then splice both ways with backpressure.
// Timeouts (connect, idle, half-closed) are enforced by the data plane's one sweep, not
// per-socket timers.
//
// Hot path (STYLE.md): no closure per connection. Both sockets of a connection carry it as
// `conn` and share module-level handlers, and bytes move through a small pump (write on
// 'data', pause on backpressure, resume on 'drain') instead of pipe(), whose per-pipe
// closures and listeners cost memory on every held connection and time on every new one.
// A 'drain' listener is added only once a write had to wait: most connections never do.

import net from 'node:net';
import type { Logger } from '../core/log.ts';
import { connectTimeoutError, ConnTimes, DEFAULT_HALF_CLOSED, ListenerBase } from './listener.ts';
import type { BackendState } from './pool.ts';
import type { DataplaneHooks, ListenerSpec, ListenerStats } from './types.ts';


/** A socket of a connection: the client's or the backend's. */
interface Side extends net.Socket {
  conn: Conn;
}

class Conn extends ConnTimes {
  readonly l: TcpListener;
  readonly client: Side;
  upstream: Side | undefined = undefined;
  backend: BackendState | undefined = undefined;
  tried: Set<BackendState> | undefined = undefined;
  /** Bytes of PROXY header written to the backend (not client data). */
  hdrLen = 0;
  /** The backend accepted and bytes flow (counted in the backend's active connections). */
  connected = false;
  closed = false;

  constructor(l: TcpListener, client: Side, now: number) {
    super(now);
    this.l = l;
    this.client = client;
  }
}

/**
 * Reset a socket (RST), or close it when its FIN is already on the way: Node 24's
 * resetAndDestroy() fails with EINVAL on such a socket and can leave the process spinning.
 */
function reset(s: net.Socket): void {
  if (s.writableEnded) s.destroy();
  else s.resetAndDestroy();
}

const peerOf = (s: Side): Side | undefined => (s === s.conn.client ? s.conn.upstream : s.conn.client);

// ---- shared handlers: `this` is the socket, `this.conn` its connection ----

function onData(this: Side, chunk: Buffer): void {
  const peer = peerOf(this);
  if (peer !== undefined && peer.writable && !peer.write(chunk)) {
    this.pause();
    if (peer.listenerCount('drain') === 0) peer.on('drain', onDrain);
  }
}

function onDrain(this: Side): void {
  const peer = peerOf(this);
  if (peer !== undefined && !peer.destroyed) peer.resume();
}

function onEnd(this: Side): void {
  const c = this.conn;
  if (c.halfSince === 0) c.halfSince = Date.now();
  // Half-close travels on: the other side gets our FIN once it has every byte before it.
  const peer = peerOf(this);
  if (c.connected && peer !== undefined && !peer.destroyed && !peer.writableEnded) peer.end();
}

function onClientError(this: Side, err: Error): void {
  this.conn.l.onSideError(this.conn, err, this);
}

function onClose(this: Side): void {
  const c = this.conn;
  // A backend socket given up on (refused, timed out) closes after its connection moved on.
  if (this !== c.client && this !== c.upstream) return;
  c.l.onSideClose(c, this);
}

function onUpstreamError(this: Side, err: Error): void {
  const c = this.conn;
  if (this !== c.upstream) return;
  if (c.connected && !c.l.earlyReset(c, this)) c.l.onSideError(c, err, this);
  else c.l.dialFailed(c, err);
}

function onUpstreamConnect(this: Side): void {
  const c = this.conn;
  if (this === c.upstream) c.l.onConnected(c, this);
}

export class TcpListener extends ListenerBase {
  readonly conns = new Set<Conn>();
  private readonly server: net.Server;
  private now: () => number;

  constructor(ls: ListenerSpec, log: Logger, now: () => number, hooks?: DataplaneHooks) {
    super(ls, log, hooks);
    this.now = now;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => this.onConnection(c as Side));
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

  private onConnection(client: Side): void {
    if (this.overLimit(this.conns.size, this.spec.limits.maxConnections, this.now(), 'connection limit reached: closing new connections')) {
      client.destroy();
      return;
    }
    // Not pauseOnConnect: until the backend accepted the socket has no 'data' listener, so
    // it reads up to its highWaterMark and no further while we dial; a client that resets
    // meanwhile is seen at once (and the dial dropped) rather than after every connect try,
    // and its first bytes wait in the buffer for the pump.
    const c = new Conn(this, client, this.now());
    client.conn = c;
    this.conns.add(c);
    client.on('error', onClientError);
    client.on('close', onClose);
    client.on('end', onEnd);
    this.dial(c);
  }

  private dial(c: Conn): void {
    if (c.closed) return;
    // Only source hashing looks at the client: the others spare the getpeername call.
    const key = this.pool.keyed ? (c.client.remoteAddress ?? '') : '';
    const b = this.pool.scheduler.pick(key, c.tried) as BackendState | undefined;
    if (!b) {
      this.noBackend++;
      if (this.log.debugEnabled) this.log.debug('no backend left', { listener: this.key, client: c.client.remoteAddress });
      reset(c.client);
      return;
    }
    const up = net.connect({ host: b.address, port: b.port, noDelay: true, allowHalfOpen: true }) as Side;
    up.conn = c;
    c.upstream = up;
    c.backend = b;
    c.dialAt = this.now();
    up.on('error', onUpstreamError);
    up.on('close', onClose);
    up.on('connect', onUpstreamConnect);
  }

  /** The dial in flight failed (error, or the sweep saw its connect timeout): try another backend. */
  dialFailed(c: Conn, err: Error): void {
    const up = c.upstream;
    const b = c.backend;
    if (up === undefined || b === undefined) return;
    c.upstream = undefined;
    c.backend = undefined;
    up.destroy();
    b.connectFailures++;
    this.hooks?.connectFailure(this.key, b.id, (err as NodeJS.ErrnoException).code ?? err.message);
    (c.tried ??= new Set()).add(b);
    if (this.log.debugEnabled) this.log.debug('connect failed', { listener: this.key, backend: b.id, err });
    if (c.tried.size <= this.spec.retries) this.dial(c);
    else {
      this.noBackend++;
      reset(c.client);
    }
  }

  onConnected(c: Conn, up: Side): void {
    c.connected = true;
    this.pool.open(c.backend!);
    up.on('end', onEnd);
    const client = c.client;
    const hdr = this.proxyHeaderFor({ address: client.remoteAddress, port: client.remotePort }, { address: client.localAddress, port: client.localPort });
    if (hdr) {
      c.hdrLen = hdr.length;
      up.write(hdr);
    }
    up.on('data', onData);
    c.client.on('data', onData);
    // A client that sent FIN with nothing buffered has already emitted 'end' (as pipe() does).
    if (c.client.readableEnded) up.end();
    else c.client.resume();
  }

  /**
   * The backend reset a connection it had accepted before a byte went either way (a
   * backend that died with it in its accept queue): undo the connection so the caller
   * retries it elsewhere, as a failed dial. Nothing was delivered, so nothing is lost.
   */
  earlyReset(c: Conn, up: Side): boolean {
    if (up.bytesRead !== 0 || up.bytesWritten > c.hdrLen || c.client.readableEnded || c.client.destroyed) return false;
    c.connected = false;
    c.hdrLen = 0;
    this.pool.close(c.backend!);
    c.client.off('data', onData);
    c.client.off('drain', onDrain);
    c.client.pause();
    return true;
  }

  /** A reset (or any error) on one side resets the other. */
  onSideError(c: Conn, err: Error, side: Side): void {
    if (this.log.debugEnabled) {
      this.log.debug('connection error', { listener: this.key, side: side === c.client ? 'client' : 'backend', err });
    }
    const other = side === c.client ? c.upstream : c.client;
    if (other && !other.destroyed) reset(other);
  }

  onSideClose(c: Conn, side: Side): void {
    if (!c.connected) {
      // The client left while we were still dialing.
      c.upstream?.destroy();
      c.upstream = undefined;
      this.finish(c);
      return;
    }
    const other = side === c.client ? c.upstream : c.client;
    if (other && !other.destroyed) {
      // One side is fully closed: whatever the other still holds can't be delivered.
      if (side.errored) reset(other);
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
   * Called by the data plane's sweep: connect, idle and half-closed bounds. The half-closed
   * bound is an inactivity bound once a side sent FIN (HAProxy's client-fin/server-fin): a
   * reply that keeps streaming after the client's FIN is not cut.
   */
  sweep(now: number): void {
    const idle = this.spec.timeouts.idle;
    const half = this.spec.timeouts.halfClosed ?? DEFAULT_HALF_CLOSED;
    const connect = this.spec.timeouts.connect;
    for (const c of this.conns) {
      if (!c.connected && c.upstream !== undefined && now - c.dialAt >= connect) {
        this.dialFailed(c, connectTimeoutError(connect));
      }
      if (c.expired(c.client.bytesRead + c.client.bytesWritten, now, idle, half)) {
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
    return this.statsWith('TCP', rx, tx, 0);
  }
}
