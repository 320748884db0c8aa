// What every listener of the data plane shares, whatever its protocol or engine: identity,
// spec, backends and scheduler, the counters /metrics and /status read, and the limit check.

import type { Logger } from '../core/log.ts';
import type { PortSpec, Protocol } from '../core/types.ts';
import { BackendPool, type BackendState } from './pool.ts';
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
