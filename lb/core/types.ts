// Shared types of the whole appliance. Pure: no I/O here.
// Durations are milliseconds once parsed.

export type Protocol = 'TCP' | 'UDP';
export type SchedulerName = 'rr' | 'wrr' | 'lc' | 'sh';
export type ProxyProtocol = 'none' | 'v1' | 'v2';
export type HealthCheckType = 'tcp' | 'http' | 'none';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface HealthCheckSpec {
  type: HealthCheckType;
  interval: number;
  timeout: number;
  rise: number;
  fall: number;
  /** Port to check instead of the backend's own; undefined: the backend's port. */
  port?: number;
  path: string;
}

export interface Timeouts {
  connect: number;
  idle: number;
  udpSession: number;
  drain: number;
  /** How long a half-closed connection (one side sent FIN) may go without traffic; default 60s. */
  halfClosed?: number;
}

export interface Limits {
  /** 0: unlimited. */
  maxConnections: number;
  maxUdpSessions: number;
}

export interface BackendSpec {
  address: string;
  port: number;
  weight: number;
}

/** One VIP:port/protocol of a service, every default resolved. */
export interface PortSpec {
  port: number;
  protocol: Protocol;
  scheduler: SchedulerName;
  healthCheck: HealthCheckSpec;
  timeouts: Timeouts;
  proxyProtocol: ProxyProtocol;
  retries: number;
  limits: Limits;
  backends: BackendSpec[];
  /**
   * Client affinity (ms): a client IP keeps the backend it last reached until idle this long
   * (Kubernetes sessionAffinity: ClientIP). Unset: none beyond what the scheduler gives.
   */
  affinityTimeout?: number;
}

export interface ServiceSpec {
  name: string;
  /** A fixed VIP. Exactly one of address and pool is set. */
  address?: string;
  pool?: string;
  ports: PortSpec[];
}

export interface PoolSpec {
  name: string;
  /** As written: ranges "A-B" and CIDRs. */
  addresses: string[];
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
}

export interface Defaults {
  scheduler: SchedulerName;
  healthCheck: Omit<HealthCheckSpec, 'type' | 'port'> & { type?: HealthCheckType; port?: number };
  timeouts: Timeouts;
  proxyProtocol: ProxyProtocol;
  retries: number;
  limits: Limits;
}

export interface KubernetesSpec {
  enabled: boolean;
  nodeHealthCheck: { type: HealthCheckType; port: number; path: string };
  kubeconfig: string | null;
  loadBalancerClass: string;
  claimUnclassed: boolean;
  nodeAddressType: string;
}

export interface HaSpec {
  enabled: boolean;
  leaseNamespace: string;
  leaseDuration: number;
  renewInterval: number;
  holdDown: number;
}

/** How TCP is proxied: the data plane's own epoll loop (default), raw libuv handles, or node:net sockets. */
export type TcpEngine = 'raw' | 'net' | 'epoll';

export interface Config {
  node: { name: string };
  announce: { mode: 'arp' | 'none'; interface?: string };
  pools: PoolSpec[];
  defaults: Defaults;
  services: ServiceSpec[];
  kubernetes: KubernetesSpec;
  ha: HaSpec;
  /** 'auto' resolved by the process that starts the workers. */
  dataplane: { workers: number | 'auto'; engine: TcpEngine };
  admin: { listen: { host: string; port: number } };
  state: { dir: string };
}

/** The key of one listener: "VIP:port/PROTO" (IPv6 VIPs in brackets). */
export function listenerKey(vip: string, port: number, protocol: Protocol): string {
  return `${vip.includes(':') ? `[${vip}]` : vip}:${port}/${protocol}`;
}

/** The identity of a backend: "address:port" (IPv6 in brackets), the metrics label. */
export function backendKey(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}
