// The scheduler interface (STYLE.md: HAProxy's lb_ops in TypeScript).
// One file per algorithm: rr.ts wrr.ts lc.ts sh.ts; index.ts builds them by name.

/** A backend as the data plane and schedulers see it. Mutable fields are owned by the data plane. */
export interface Backend {
  /** "address:port": identity, metrics label, and the sh ring's input. */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  weight: number;
  /** Health: false once health checks took it out. */
  up: boolean;
  /** Removed from the configuration: existing connections finish, no new ones. */
  draining: boolean;
  /** Active connections (TCP) or sessions (UDP) in this process. */
  active: number;
}

/** What a scheduler may key on: the client's IP address as text ("10.0.0.1", "::1"). */
export type ClientKey = string;

export interface Scheduler {
  /**
   * Choose a backend for a new connection or session, or undefined when none can be had.
   * `tried` holds backends already tried for this connection (connect retries): never
   * return one of them. No allocation on this path when `tried` is undefined.
   */
  pick(client: ClientKey, tried?: ReadonlySet<Backend>): Backend | undefined;
  /** The set, a weight or a health state changed. Called with every backend, also down or draining ones. */
  update(backends: readonly Backend[]): void;
  /** Optional hooks, called when a connection to `b` opens or closes (after `b.active` changed). */
  onOpen?(b: Backend): void;
  onClose?(b: Backend): void;
}
