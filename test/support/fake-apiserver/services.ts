// What the real API server does to a Service on create and update: defaults, validation of
// the fields Edgeport relies on, and allocation of the cluster IP (10.96.0.0/12), node ports
// (30000-32767) and the health check node port (externalTrafficPolicy: Local).
//
// Allocation is deterministic (sequential from the upper band, as upstream's dynamic
// allocations prefer the upper band since 1.27): cluster IPs from 10.96.1.1, node ports from
// 30086, so statically requested values below those (30080, 10.96.0.50) never collide with
// allocated ones.

import { invalid, invalidCause, notSupportedCause, requiredCause, type Cause } from './status.ts';
import type { Obj, ResourceType } from './resources.ts';

const CIDR_BASE = (10 << 24) | (96 << 16); // 10.96.0.0
const CIDR_SIZE = 1 << 20; // /12
const PORT_MIN = 30000;
const PORT_MAX = 32767;

function ipToInt(ip: string): number | undefined {
  const m = ip.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function isIP(s: string): boolean {
  return ipToInt(s) !== undefined || /^[0-9a-fA-F:]+:[0-9a-fA-F:.]*$/.test(s);
}

const needsNodePorts = (svc: Obj) => svc.spec?.type === 'NodePort' || (svc.spec?.type === 'LoadBalancer' && svc.spec?.allocateLoadBalancerNodePorts !== false);
const needsClusterIP = (svc: Obj) => svc.spec?.type !== 'ExternalName';
const needsHealthCheckPort = (svc: Obj) => svc.spec?.type === 'LoadBalancer' && svc.spec?.externalTrafficPolicy === 'Local';

export class ServiceAllocator {
  private ips = new Set<number>();
  private ports = new Set<number>();
  private nextIP = CIDR_BASE + 257;
  private nextPort = 30086;

  private takeIP(): string {
    for (let i = 0; i < CIDR_SIZE; i++) {
      const n = this.nextIP;
      this.nextIP = this.nextIP + 1 >= CIDR_BASE + CIDR_SIZE - 1 ? CIDR_BASE + 1 : this.nextIP + 1;
      if (!this.ips.has(n)) {
        this.ips.add(n);
        return intToIp(n);
      }
    }
    throw new Error('service IP range full');
  }

  private takePort(): number {
    for (let i = 0; i <= PORT_MAX - PORT_MIN; i++) {
      const p = this.nextPort;
      this.nextPort = this.nextPort >= PORT_MAX ? PORT_MIN : this.nextPort + 1;
      if (!this.ports.has(p)) {
        this.ports.add(p);
        return p;
      }
    }
    throw new Error('node port range full');
  }

  private heldPorts(svc: Obj | undefined): number[] {
    if (!svc) return [];
    const out = ((svc.spec?.ports ?? []) as Obj[]).map((p) => p.nodePort).filter((p): p is number => typeof p === 'number' && p > 0);
    if (svc.spec?.healthCheckNodePort) out.push(svc.spec.healthCheckNodePort);
    return out;
  }

  /** Forget what svc held (delete). */
  release(svc: Obj): void {
    const n = ipToInt(svc.spec?.clusterIP ?? '');
    if (n !== undefined) this.ips.delete(n);
    for (const p of this.heldPorts(svc)) this.ports.delete(p);
  }

  /** Mark what an object written directly (FakeApiServer.objects.put) holds. */
  adopt(svc: Obj): void {
    const n = ipToInt(svc.spec?.clusterIP ?? '');
    if (n !== undefined) this.ips.add(n);
    for (const p of this.heldPorts(svc)) this.ports.add(p);
  }

  /**
   * Default, validate and allocate for a Service being created (old undefined) or updated
   * through the main resource. Mutates svc. Throws a 422 ApiError.
   */
  prepare(r: ResourceType, svc: Obj, old: Obj | undefined): void {
    const name = svc.metadata?.name ?? '';
    const spec: Obj = (svc.spec ??= {});
    spec.type ??= 'ClusterIP';
    spec.sessionAffinity ??= 'None';
    const causes: Cause[] = [];
    const types = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];
    if (!types.includes(spec.type)) causes.push(notSupportedCause('spec.type', spec.type, types));
    const ports: Obj[] = (spec.ports ??= []);
    if (ports.length === 0 && spec.type !== 'ExternalName' && spec.clusterIP !== 'None') causes.push(requiredCause('spec.ports'));
    ports.forEach((p, i) => {
      p.protocol ??= 'TCP';
      p.targetPort ??= p.port;
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) causes.push(invalidCause(`spec.ports[${i}].port`, p.port, 'must be between 1 and 65535, inclusive'));
      if (!['TCP', 'UDP', 'SCTP'].includes(p.protocol)) causes.push(notSupportedCause(`spec.ports[${i}].protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']));
      if (ports.length > 1 && !p.name) causes.push(requiredCause(`spec.ports[${i}].name`));
    });

    // Type-dependent fields the server drops when the type changes away (dropTypeDependentFields).
    if (old) {
      const ospec = old.spec ?? {};
      if (ospec.type === 'LoadBalancer' && spec.type !== 'LoadBalancer') {
        if (spec.loadBalancerClass === ospec.loadBalancerClass) delete spec.loadBalancerClass;
        if (spec.allocateLoadBalancerNodePorts === ospec.allocateLoadBalancerNodePorts) delete spec.allocateLoadBalancerNodePorts;
        if (spec.healthCheckNodePort === ospec.healthCheckNodePort) delete spec.healthCheckNodePort;
      }
      if (needsNodePorts(old) && !needsNodePorts(svc)) {
        for (const p of ports) {
          const op = ((ospec.ports ?? []) as Obj[]).find((x) => x.name === p.name);
          if (op && p.nodePort === op.nodePort) delete p.nodePort;
        }
      }
      if (!['NodePort', 'LoadBalancer'].includes(spec.type) && spec.externalTrafficPolicy === ospec.externalTrafficPolicy) delete spec.externalTrafficPolicy;
      if (ospec.type === 'LoadBalancer' && spec.type === 'LoadBalancer' && (ospec.loadBalancerClass ?? null) !== (spec.loadBalancerClass ?? null)) {
        causes.push(invalidCause('spec.loadBalancerClass', spec.loadBalancerClass ?? null, 'may not change once set'));
      }
      // patchAllocatedValues: an omitted clusterIP or nodePort keeps the allocated one.
      if (needsClusterIP(old) && needsClusterIP(svc) && !spec.clusterIP) {
        spec.clusterIP = ospec.clusterIP;
        spec.clusterIPs = ospec.clusterIPs;
      }
      if (needsNodePorts(old) && needsNodePorts(svc)) {
        const byName = new Map<string, number>(((ospec.ports ?? []) as Obj[]).map((p) => [p.name ?? '', p.nodePort]));
        const used = new Set(ports.map((p) => p.nodePort).filter(Boolean));
        for (const p of ports) {
          const v = byName.get(p.name ?? '');
          if (!p.nodePort && v && !used.has(v)) p.nodePort = v;
        }
      }
      if (needsHealthCheckPort(old) && needsHealthCheckPort(svc) && !spec.healthCheckNodePort) spec.healthCheckNodePort = ospec.healthCheckNodePort;
      if (ospec.clusterIP && spec.clusterIP && ospec.clusterIP !== spec.clusterIP && needsClusterIP(old)) {
        causes.push(invalidCause('spec.clusterIPs[0]', spec.clusterIP, 'may not change once set'));
      }
    }

    if (spec.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
    else if (spec.loadBalancerClass !== undefined && spec.loadBalancerClass !== null) {
      causes.push(invalidCause('spec.loadBalancerClass', spec.loadBalancerClass, 'may only be used when `type` is \'LoadBalancer\''));
    }
    if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') spec.externalTrafficPolicy ??= 'Cluster';
    if (spec.externalTrafficPolicy !== undefined && !['Cluster', 'Local'].includes(spec.externalTrafficPolicy)) {
      causes.push(notSupportedCause('spec.externalTrafficPolicy', spec.externalTrafficPolicy, ['Cluster', 'Local']));
    }
    if (needsClusterIP(svc)) spec.internalTrafficPolicy ??= 'Cluster';

    // Requested values: must be in range and free (ours count as free on update).
    const mine = new Set(this.heldPorts(old));
    const myIP = ipToInt(old?.spec?.clusterIP ?? '');
    if (needsClusterIP(svc) && spec.clusterIP && spec.clusterIP !== 'None') {
      const n = ipToInt(spec.clusterIP);
      if (n === undefined || n < CIDR_BASE || n >= CIDR_BASE + CIDR_SIZE) {
        causes.push(invalidCause('spec.clusterIPs', spec.clusterIP, 'failed to allocate IP ' + spec.clusterIP + ': the provided IP (' + spec.clusterIP + ') is not in the valid range. The range of valid IPs is 10.96.0.0/12'));
      } else if (this.ips.has(n) && n !== myIP) {
        causes.push(invalidCause('spec.clusterIPs', [spec.clusterIP], `failed to allocate IP ${spec.clusterIP}: provided IP is already allocated`));
      }
    }
    const seen = new Set<number>();
    ports.forEach((p, i) => {
      if (!p.nodePort) return;
      if (!needsNodePorts(svc) && spec.type !== 'LoadBalancer') {
        causes.push({ reason: 'FieldValueForbidden', field: `spec.ports[${i}].nodePort`, message: 'Forbidden: may not be used when `type` is \'ClusterIP\'' });
      } else if (p.nodePort < PORT_MIN || p.nodePort > PORT_MAX) {
        causes.push(invalidCause(`spec.ports[${i}].nodePort`, p.nodePort, `provided port is not in the valid range. The range of valid ports is ${PORT_MIN}-${PORT_MAX}`));
      } else if ((this.ports.has(p.nodePort) && !mine.has(p.nodePort)) || (seen.has(p.nodePort) && ports.filter((x) => x.nodePort === p.nodePort && x.protocol === p.protocol).length > 1)) {
        causes.push(invalidCause(`spec.ports[${i}].nodePort`, p.nodePort, 'provided port is already allocated'));
      }
      seen.add(p.nodePort);
    });
    for (const [i, ip] of ((spec.externalIPs ?? []) as string[]).entries()) if (!isIP(ip)) causes.push(invalidCause(`spec.externalIPs[${i}]`, ip, 'must be a valid IP address'));
    if (causes.length > 0) throw invalid(r, name, causes);

    // Allocate: release what the old object held and is no longer used, then take the rest.
    if (old) this.release(old);
    if (needsClusterIP(svc)) {
      if (!spec.clusterIP) spec.clusterIP = this.takeIP();
      else if (spec.clusterIP !== 'None') this.ips.add(ipToInt(spec.clusterIP)!);
      spec.clusterIPs = [spec.clusterIP];
      if (spec.clusterIP !== 'None' || spec.ipFamilies) spec.ipFamilies ??= ['IPv4'];
      spec.ipFamilyPolicy ??= 'SingleStack';
    } else {
      delete spec.clusterIP;
      delete spec.clusterIPs;
    }
    for (const p of ports) {
      if (p.nodePort) this.ports.add(p.nodePort);
    }
    if (needsNodePorts(svc)) for (const p of ports) if (!p.nodePort) p.nodePort = this.takePort();
    if (needsHealthCheckPort(svc)) {
      if (spec.healthCheckNodePort) this.ports.add(spec.healthCheckNodePort);
      else spec.healthCheckNodePort = this.takePort();
    } else if (spec.healthCheckNodePort && spec.type !== 'LoadBalancer') {
      delete spec.healthCheckNodePort;
    }
  }
}

/** Validation of a Service's status (both the main resource keeps it and /status writes it). */
export function validateServiceStatus(r: ResourceType, svc: Obj): void {
  const causes: Cause[] = [];
  const ingress: unknown = svc.status?.loadBalancer?.ingress;
  if (ingress !== undefined && ingress !== null && !Array.isArray(ingress)) throw invalid(r, svc.metadata?.name ?? '', [invalidCause('status.loadBalancer.ingress', ingress, 'must be a list')]);
  for (const [i, ing] of ((ingress ?? []) as Obj[]).entries()) {
    const f = `status.loadBalancer.ingress[${i}]`;
    if (ing.ip !== undefined && !isIP(String(ing.ip))) causes.push(invalidCause(`${f}.ip`, ing.ip, 'must be a valid IP address'));
    if (ing.ip && ing.ipMode === undefined) ing.ipMode = 'VIP'; // defaulted since 1.29
    if (ing.ipMode !== undefined) {
      if (!ing.ip) causes.push({ reason: 'FieldValueForbidden', field: `${f}.ipMode`, message: 'Forbidden: may not be specified when `ip` is not set' });
      else if (!['VIP', 'Proxy'].includes(ing.ipMode)) causes.push(notSupportedCause(`${f}.ipMode`, ing.ipMode, ['Proxy', 'VIP']));
    }
  }
  if (causes.length > 0) throw invalid(r, svc.metadata?.name ?? '', causes);
}
