// Server-side printing: the meta.k8s.io/v1 Table kubectl get asks for (Accept:
// application/json;as=Table;v=v1;g=meta.k8s.io), with the columns of upstream's
// pkg/printers/internalversion for the kinds served here.

import type { Obj, ResourceType } from './resources.ts';

interface Column {
  name: string;
  type: string;
  format?: string;
  priority?: number;
  cell: (o: Obj, now: number) => unknown;
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    return dy === 0 ? `${Math.trunc(hours / 24 / 365)}y` : `${Math.trunc(hours / 24 / 365)}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

function since(ts: unknown, now: number): string {
  if (typeof ts !== 'string' || ts === '') return '<unknown>';
  return humanDuration(now - Date.parse(ts));
}

const name: Column = { name: 'Name', type: 'string', format: 'name', cell: (o) => o.metadata?.name ?? '' };
const age: Column = { name: 'Age', type: 'string', cell: (o, now) => since(o.metadata?.creationTimestamp, now) };

/** printers.go getServiceExternalIP + loadBalancerStatusStringer (not wide: cut at 16 chars). */
export function serviceExternalIP(svc: Obj, wide = false): string {
  const spec = svc.spec ?? {};
  const externalIPs: string[] = spec.externalIPs ?? [];
  switch (spec.type ?? 'ClusterIP') {
    case 'ClusterIP':
    case 'NodePort':
      return externalIPs.length > 0 ? externalIPs.join(',') : '<none>';
    case 'LoadBalancer': {
      const ingress: Obj[] = svc.status?.loadBalancer?.ingress ?? [];
      let lb = ingress.map((i) => i.ip || i.hostname).filter(Boolean).join(',');
      if (!wide && lb.length > 16) lb = `${lb.slice(0, 13)}...`;
      if (externalIPs.length > 0) return [lb, ...externalIPs].filter(Boolean).join(',');
      return lb.length > 0 ? lb : '<pending>';
    }
    case 'ExternalName':
      return spec.externalName ?? '';
  }
  return '<unknown>';
}

/** printers.go makePortString: 80:30080/TCP,443/TCP. */
export function servicePorts(svc: Obj): string {
  const ports: Obj[] = svc.spec?.ports ?? [];
  if (ports.length === 0) return '<none>';
  return ports.map((p) => (p.nodePort ? `${p.port}:${p.nodePort}/${p.protocol ?? 'TCP'}` : `${p.port}/${p.protocol ?? 'TCP'}`)).join(',');
}

function selectorString(sel: Record<string, string> | undefined): string {
  if (!sel || Object.keys(sel).length === 0) return '<none>';
  return Object.keys(sel)
    .sort()
    .map((k) => `${k}=${sel[k]}`)
    .join(',');
}

function nodeStatus(n: Obj): string {
  const ready = (n.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready');
  let s = ready ? (ready.status === 'True' ? 'Ready' : 'NotReady') : 'Unknown';
  if (n.spec?.unschedulable) s += ',SchedulingDisabled';
  return s;
}

function nodeRoles(n: Obj): string {
  const roles = Object.keys(n.metadata?.labels ?? {})
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length))
    .filter(Boolean)
    .sort();
  return roles.length > 0 ? roles.join(',') : '<none>';
}

function nodeAddress(n: Obj, type: string): string {
  return (n.status?.addresses ?? []).find((a: Obj) => a.type === type)?.address ?? '<none>';
}

const COLUMNS: Record<string, Column[]> = {
  '/services': [
    name,
    { name: 'Type', type: 'string', cell: (o) => o.spec?.type ?? 'ClusterIP' },
    { name: 'Cluster-IP', type: 'string', cell: (o) => (o.spec?.clusterIPs?.[0] ?? o.spec?.clusterIP) || '<none>' },
    { name: 'External-IP', type: 'string', cell: (o) => serviceExternalIP(o) },
    { name: 'Port(s)', type: 'string', cell: (o) => servicePorts(o) },
    age,
    { name: 'Selector', type: 'string', priority: 1, cell: (o) => selectorString(o.spec?.selector) },
  ],
  '/nodes': [
    name,
    { name: 'Status', type: 'string', cell: nodeStatus },
    { name: 'Roles', type: 'string', cell: nodeRoles },
    age,
    { name: 'Version', type: 'string', cell: (o) => o.status?.nodeInfo?.kubeletVersion ?? '' },
    { name: 'Internal-IP', type: 'string', priority: 1, cell: (o) => nodeAddress(o, 'InternalIP') },
    { name: 'External-IP', type: 'string', priority: 1, cell: (o) => nodeAddress(o, 'ExternalIP') },
  ],
  '/namespaces': [name, { name: 'Status', type: 'string', cell: (o) => o.status?.phase ?? '' }, age],
  'coordination.k8s.io/leases': [name, { name: 'Holder', type: 'string', cell: (o) => o.spec?.holderIdentity ?? '' }, age],
  'discovery.k8s.io/endpointslices': [
    name,
    { name: 'AddressType', type: 'string', cell: (o) => o.addressType ?? '' },
    { name: 'Ports', type: 'string', cell: (o) => ((o.ports ?? []) as Obj[]).map((p) => String(p.port ?? '<unset>')).join(',') || '<unset>' },
    { name: 'Endpoints', type: 'string', cell: (o) => ((o.endpoints ?? []) as Obj[]).flatMap((e) => e.addresses ?? []).join(',') || '<unset>' },
    age,
  ],
  '/events': [
    { name: 'Last Seen', type: 'string', cell: (o, now) => since(o.lastTimestamp || o.eventTime || o.metadata?.creationTimestamp, now) },
    { name: 'Type', type: 'string', cell: (o) => o.type ?? '' },
    { name: 'Reason', type: 'string', cell: (o) => o.reason ?? '' },
    { name: 'Object', type: 'string', cell: (o) => `${String(o.involvedObject?.kind ?? '').toLowerCase()}/${o.involvedObject?.name ?? ''}` },
    { name: 'Message', type: 'string', cell: (o) => String(o.message ?? '').trim() },
  ],
  'events.k8s.io/events': [
    { name: 'Last Seen', type: 'string', cell: (o, now) => since(o.deprecatedLastTimestamp || o.eventTime || o.metadata?.creationTimestamp, now) },
    { name: 'Type', type: 'string', cell: (o) => o.type ?? '' },
    { name: 'Reason', type: 'string', cell: (o) => o.reason ?? '' },
    { name: 'Object', type: 'string', cell: (o) => `${String(o.regarding?.kind ?? '').toLowerCase()}/${o.regarding?.name ?? ''}` },
    { name: 'Message', type: 'string', cell: (o) => String(o.note ?? '').trim() },
  ],
};

function columnsFor(r: ResourceType): Column[] {
  return COLUMNS[`${r.group}/${r.plural}`] ?? [name, age];
}

/** Does the Accept header ask for a Table? */
export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

function rowObject(o: Obj, includeObject: string): Obj | undefined {
  if (includeObject === 'None') return undefined;
  if (includeObject === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

/** A Table of items; includeObject is the query parameter (None | Metadata (default) | Object). */
export function toTable(r: ResourceType, items: Obj[], listMeta: Obj, includeObject = 'Metadata', now = Date.now()): Obj {
  const cols = columnsFor(r);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: '', priority: c.priority ?? 0 })),
    rows: items.map((o) => {
      const obj = rowObject(o, includeObject);
      return { cells: cols.map((c) => c.cell(o, now)), ...(obj ? { object: obj } : {}) };
    }),
  };
}
