// Kubernetes objects -> what Edgeport serves. Pure: plain JSON shapes in (no client-node
// types), ports and backends out. SPEC "Kubernetes conventions".

import type { Defaults, HealthCheckSpec, KubernetesSpec, PortSpec, Protocol, ProxyProtocol, SchedulerName } from '../core/types.ts';
import { canonicalIp } from '../ipam/address.ts';

export const ANN_IPS = 'edgeport.io/loadBalancerIPs';
export const ANN_POOL = 'edgeport.io/address-pool';
export const ANN_SCHEDULER = 'edgeport.io/scheduler';
export const ANN_SHARED = 'edgeport.io/allow-shared-ip';
export const ANN_PROXY = 'edgeport.io/proxy-protocol';
export const FINALIZER = 'edgeport.io/load-balancer';
export const LABEL_EXCLUDE = 'node.kubernetes.io/exclude-from-external-load-balancers';
export const TAINT_TO_BE_DELETED = 'ToBeDeletedByClusterAutoscaler';
export const DEFAULT_AFFINITY_SECONDS = 10800;

// status.loadBalancer.ingress[].ports[].error values. Upstream's PortStatus.error is a
// CamelCase reason, prefixed with a domain for anything not built into Kubernetes (none is
// built in yet): "foo.example.com/CamelCase", at most 316 characters.
/** The appliance could not bind VIP:port (reported by the data plane through the app). */
export const PORT_ERROR_BIND_FAILED = 'edgeport.io/BindFailed';
/** Another Service sharing the address (edgeport.io/allow-shared-ip) already serves port/protocol. */
export const PORT_ERROR_PORT_CLASH = 'edgeport.io/PortClash';
/** SCTP: Edgeport serves TCP and UDP only. */
export const PORT_ERROR_UNSUPPORTED_PROTOCOL = 'edgeport.io/UnsupportedProtocol';
/** The port has no nodePort (allocateLoadBalancerNodePorts: false): nothing to send traffic to. */
export const PORT_ERROR_NO_NODE_PORT = 'edgeport.io/NoNodePort';
const PORT_ERROR_RE = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;

export interface KMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  finalizers?: string[];
  resourceVersion?: string;
  /** A string from a watch, a Date from a list (client-node deserializes lists). */
  creationTimestamp?: string | Date;
}

export interface KServicePort {
  name?: string;
  port: number;
  protocol?: string;
  nodePort?: number;
}

export interface KService {
  metadata: KMeta;
  spec?: {
    type?: string;
    loadBalancerClass?: string;
    loadBalancerIP?: string;
    ports?: KServicePort[];
    externalTrafficPolicy?: string;
    healthCheckNodePort?: number;
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; ipMode?: string; hostname?: string; ports?: PortStatus[] }[] } };
}

/** core/v1 PortStatus: one port of a Service in an ingress entry. */
export interface PortStatus {
  port: number;
  protocol: string;
  error?: string;
}

/** core/v1 LoadBalancerIngress as Edgeport writes it. */
export interface LoadBalancerIngress {
  ip: string;
  ipMode: 'Proxy';
  ports?: PortStatus[];
}

export interface KNode {
  metadata: KMeta;
  spec?: { unschedulable?: boolean; taints?: { key: string; effect?: string }[] };
  status?: { conditions?: { type: string; status: string }[]; addresses?: { type: string; address: string }[] };
}

/** Ready local endpoints per node name, from the Service's EndpointSlices. */
export type LocalEndpoints = ReadonlyMap<string, number>;

export interface KEndpointSlice {
  metadata: KMeta;
  endpoints?: { nodeName?: string; conditions?: { ready?: boolean } }[];
}

/** Is this Service Edgeport's to serve? */
export function isOurs(svc: KService, k: Pick<KubernetesSpec, 'loadBalancerClass' | 'claimUnclassed'>): boolean {
  if (svc.spec?.type !== 'LoadBalancer') return false;
  const cls = svc.spec.loadBalancerClass;
  return cls === undefined || cls === '' ? k.claimUnclassed : cls === k.loadBalancerClass;
}

export function serviceKey(svc: KService): string {
  return `${svc.metadata.namespace ?? 'default'}/${svc.metadata.name}`;
}

/** Nodes that get load balancer traffic, with the address of `addressType` (SPEC, KEP-3458). */
export function eligibleNodes(nodes: readonly KNode[], addressType: string): { name: string; address: string }[] {
  const out: { name: string; address: string }[] = [];
  for (const n of nodes) {
    if (n.metadata.labels && LABEL_EXCLUDE in n.metadata.labels) continue;
    if (n.spec?.taints?.some((t) => t.key === TAINT_TO_BE_DELETED)) continue;
    if (!n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) continue;
    const addr = n.status.addresses?.find((a) => a.type === addressType)?.address;
    if (!addr) continue;
    out.push({ name: n.metadata.name, address: addr });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Ready endpoints per node, from EndpointSlices of one Service. */
export function localEndpoints(slices: readonly KEndpointSlice[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of slices) {
    for (const e of s.endpoints ?? []) {
      if (!e.nodeName || e.conditions?.ready === false) continue;
      m.set(e.nodeName, (m.get(e.nodeName) ?? 0) + 1);
    }
  }
  return m;
}

/**
 * Addresses the Service asks for: spec.loadBalancerIP, or the annotation (comma-separated).
 * Canonical text where they parse (so "2001:DB8::5" matches the "2001:db8::5" in status);
 * as written where they do not (the allocator says why).
 */
export function requestedIPs(svc: KService): string[] {
  const ann = svc.metadata.annotations?.[ANN_IPS];
  const raw = ann ? ann.split(',').map((s) => s.trim()).filter(Boolean) : svc.spec?.loadBalancerIP ? [svc.spec.loadBalancerIP.trim()] : [];
  return raw.map((ip) => canonicalIp(ip) ?? ip);
}

export interface ServiceSettings {
  scheduler: SchedulerName;
  proxyProtocol: ProxyProtocol;
  pool: string | undefined;
  sharingKey: string | undefined;
  /** ClientIP affinity timeout in ms, when sessionAffinity is ClientIP. */
  affinityMs: number | undefined;
  /** Annotation values that were ignored, with why. */
  problems: string[];
}

const SCHEDULERS = new Set(['rr', 'wrr', 'lc', 'sh']);
const PROXY = new Set(['none', 'v1', 'v2']);

export function serviceSettings(svc: KService, defaults: Pick<Defaults, 'scheduler' | 'proxyProtocol'>): ServiceSettings {
  const ann = svc.metadata.annotations ?? {};
  const problems: string[] = [];
  let scheduler = defaults.scheduler;
  let affinityMs: number | undefined;
  if (svc.spec?.sessionAffinity === 'ClientIP') {
    scheduler = 'sh';
    affinityMs = (svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS) * 1000;
  }
  const s = ann[ANN_SCHEDULER];
  if (s !== undefined) {
    if (!SCHEDULERS.has(s)) problems.push(`Ignoring annotation ${ANN_SCHEDULER}: use rr, wrr, lc or sh, not "${s}"`);
    else {
      // The explicit annotation wins; say what that costs.
      if (affinityMs !== undefined && s !== 'sh') problems.push(`Annotation ${ANN_SCHEDULER} "${s}" overrides sessionAffinity ClientIP for first picks only: a client then keeps its node until idle for the affinity timeout`);
      scheduler = s as SchedulerName;
    }
  }
  let proxyProtocol = defaults.proxyProtocol;
  const p = ann[ANN_PROXY];
  if (p !== undefined) {
    if (PROXY.has(p)) proxyProtocol = p as ProxyProtocol;
    else problems.push(`Ignoring annotation ${ANN_PROXY}: use none, v1 or v2, not "${p}"`);
  }
  return { scheduler, proxyProtocol, pool: ann[ANN_POOL] || undefined, sharingKey: ann[ANN_SHARED] || undefined, affinityMs, problems };
}

/**
 * The ports Edgeport serves for a Service: each port's NodePort on every eligible node.
 * externalTrafficPolicy Local: checked on healthCheckNodePort /healthz, and with wrr the
 * weight of a node is its number of ready local endpoints (nodes with none get weight 1,
 * their health check keeps them out).
 */
export function servicePorts(opts: {
  svc: KService;
  nodes: readonly { name: string; address: string }[];
  local: LocalEndpoints;
  base: Omit<PortSpec, 'port' | 'protocol' | 'backends' | 'scheduler' | 'proxyProtocol'>;
  k8s: Pick<KubernetesSpec, 'nodeHealthCheck'>;
  settings: ServiceSettings;
}): { ports: PortSpec[]; problems: string[] } {
  const { svc, nodes, settings } = opts;
  const problems: string[] = [];
  const ports: PortSpec[] = [];
  const localPolicy = svc.spec?.externalTrafficPolicy === 'Local';
  const hc: HealthCheckSpec = localPolicy
    ? { ...opts.base.healthCheck, type: 'http', port: svc.spec?.healthCheckNodePort, path: '/healthz' }
    : { ...opts.base.healthCheck, type: opts.k8s.nodeHealthCheck.type, port: opts.k8s.nodeHealthCheck.port, path: opts.k8s.nodeHealthCheck.path };
  if (localPolicy && !svc.spec?.healthCheckNodePort) problems.push('externalTrafficPolicy is Local but spec.healthCheckNodePort is not set');
  for (const p of svc.spec?.ports ?? []) {
    const protocol = (p.protocol ?? 'TCP').toUpperCase();
    if (protocol !== 'TCP' && protocol !== 'UDP') {
      problems.push(`Cannot serve port ${p.port}/${protocol}: Edgeport serves TCP and UDP`);
      continue;
    }
    if (!p.nodePort) {
      problems.push(`Cannot serve port ${p.port}/${protocol}: it has no nodePort (allocateLoadBalancerNodePorts false?)`);
      continue;
    }
    ports.push({
      ...opts.base,
      port: p.port,
      protocol: protocol as Protocol,
      scheduler: settings.scheduler,
      proxyProtocol: settings.proxyProtocol,
      ...(settings.affinityMs !== undefined ? { affinityTimeout: settings.affinityMs } : {}),
      healthCheck: hc,
      backends: nodes.map((n) => ({
        address: n.address,
        port: p.nodePort!,
        weight: localPolicy && settings.scheduler === 'wrr' ? Math.min(256, Math.max(1, opts.local.get(n.name) ?? 0)) : 1,
      })),
    });
  }
  return { ports, problems };
}

/** The port/protocol pairs Edgeport can serve for a Service (what the allocator must hold). */
export function servablePorts(svc: KService): { port: number; protocol: Protocol }[] {
  const out: { port: number; protocol: Protocol }[] = [];
  for (const p of svc.spec?.ports ?? []) {
    const protocol = (p.protocol ?? 'TCP').toUpperCase();
    if (protocol === 'TCP' || protocol === 'UDP') out.push({ port: p.port, protocol });
  }
  return out;
}

/** "80/TCP": the identity of a port in the allocator, in port errors and in the data plane. */
export function portId(port: number, protocol: string): string {
  return `${port}/${protocol.toUpperCase()}`;
}

/** Can `s` stand in PortStatus.error (a CamelCase reason, optionally "domain/")? */
export function isPortErrorReason(s: string): boolean {
  return s.length <= 316 && PORT_ERROR_RE.test(s);
}

/**
 * The ports of an ingress entry. undefined while every port is served; otherwise every port
 * of the Service, each failing one with its reason: upstream's rule is that when ports are
 * listed at all, every port of the Service has an entry. A port's own problem (protocol, no
 * nodePort) comes first, then a clash on a shared address, then what the data plane reported.
 */
export function portStatuses(svc: KService, clashing: ReadonlySet<string>, reported: ReadonlyMap<string, string>): PortStatus[] | undefined {
  const out: PortStatus[] = [];
  let failing = false;
  for (const p of svc.spec?.ports ?? []) {
    const protocol = (p.protocol ?? 'TCP').toUpperCase();
    const id = portId(p.port, protocol);
    const error =
      protocol !== 'TCP' && protocol !== 'UDP'
        ? PORT_ERROR_UNSUPPORTED_PROTOCOL
        : !p.nodePort
          ? PORT_ERROR_NO_NODE_PORT
          : clashing.has(id)
            ? PORT_ERROR_PORT_CLASH
            : reported.get(id);
    if (error !== undefined) failing = true;
    out.push({ port: p.port, protocol, ...(error !== undefined ? { error } : {}) });
  }
  return failing ? out : undefined;
}

/** The ingress entry for a Service's address. */
export function ingressFor(ip: string, ports: PortStatus[] | undefined): LoadBalancerIngress {
  return ports ? { ip, ipMode: 'Proxy', ports } : { ip, ipMode: 'Proxy' };
}

/**
 * Does the Service's status already say `want`? Compared field by field: the informer hands
 * over typed objects from a list (with undefined fields present) and plain JSON from a watch.
 */
export function ingressMatches(svc: KService, want: readonly LoadBalancerIngress[]): boolean {
  const norm = (i: { ip?: string; ipMode?: string; hostname?: string; ports?: PortStatus[] }) =>
    JSON.stringify([i.ip, i.ipMode, i.hostname, (i.ports ?? []).map((p) => [p.port, p.protocol, p.error])]);
  const cur = svc.status?.loadBalancer?.ingress ?? [];
  return cur.length === want.length && cur.every((c, i) => norm(c) === norm(want[i]!));
}
