// The contract between the control plane and a data plane (in-process or a worker process).
// Everything here is plain data so it crosses process boundaries as IPC messages.

import type { PortSpec, Protocol } from '../core/types.ts';

/** One listener the data plane should have: a service's port on a VIP. */
export interface ListenerSpec {
  /** listenerKey(vip, port, protocol) */
  key: string;
  service: string;
  vip: string;
  spec: PortSpec;
}

export interface DesiredState {
  listeners: ListenerSpec[];
}

export interface ApplyResult {
  /** Keys of listeners that are up after the apply. */
  up: string[];
  /** Listeners that failed to bind, with the reason. */
  failed: { key: string; error: string; code?: string }[];
}

export interface BackendStats {
  id: string;
  address: string;
  port: number;
  weight: number;
  up: boolean;
  draining: boolean;
  active: number;
  total: number;
  connectFailures: number;
}

export interface ListenerStats {
  key: string;
  service: string;
  vip: string;
  port: number;
  protocol: Protocol;
  scheduler: string;
  bytesRx: number;
  bytesTx: number;
  udpSessionsActive: number;
  /** Connections closed at once / datagrams of new sessions dropped because a limit was reached. */
  limitRejected: number;
  /** Connections that found no backend after every try. */
  noBackend: number;
  backends: BackendStats[];
}

/** What a data plane tells the control plane as it happens (passive health). */
export interface DataplaneHooks {
  /** A client connect or session to this backend failed: refused, timed out, unreachable. */
  connectFailure(listener: string, backend: string, reason: string): void;
}

export interface DataplaneStats {
  listeners: ListenerStats[];
}
