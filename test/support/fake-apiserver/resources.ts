// The resource types the fake API server serves, and the discovery documents built from them.
// Values follow a real v1.32 kube-apiserver (verbs, short names, categories, storage hashes
// are left out: kubectl uses them only for caching).

export type Obj = Record<string, any>;

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Has a /status subresource (main resource ignores status, /status ignores spec). */
  status: boolean;
  /** The key objects are stored under; a second API view of the same objects (events.k8s.io) shares it. */
  storage: string;
  /** Sets metadata.generation and bumps it on spec changes. */
  generation: boolean;
  /** Fields of type MicroTime ("2006-01-02T15:04:05.000000Z07:00"), as dotted paths. */
  microTimes?: string[];
  /** Fields of type Time, written back at second precision. */
  times?: string[];
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export const RESOURCES: ResourceType[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', singular: 'namespace', namespaced: false, shortNames: ['ns'], status: true, storage: 'namespaces', generation: false },
  { group: '', version: 'v1', kind: 'Node', plural: 'nodes', singular: 'node', namespaced: false, shortNames: ['no'], status: true, storage: 'nodes', generation: false },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', singular: 'service', namespaced: true, shortNames: ['svc'], status: true, storage: 'services', generation: true },
  {
    group: '', version: 'v1', kind: 'Event', plural: 'events', singular: 'event', namespaced: true, shortNames: ['ev'], status: false, storage: 'events', generation: false,
    microTimes: ['eventTime', 'series.lastObservedTime'], times: ['firstTimestamp', 'lastTimestamp'],
  },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', singular: 'endpointslice', namespaced: true, status: false, storage: 'endpointslices', generation: false },
  {
    group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', singular: 'lease', namespaced: true, status: false, storage: 'leases', generation: false,
    microTimes: ['spec.acquireTime', 'spec.renewTime'],
  },
  {
    group: 'events.k8s.io', version: 'v1', kind: 'Event', plural: 'events', singular: 'event', namespaced: true, shortNames: ['ev'], status: false, storage: 'events', generation: false,
    microTimes: ['eventTime', 'series.lastObservedTime'], times: ['deprecatedFirstTimestamp', 'deprecatedLastTimestamp'],
  },
];

export function groupVersion(r: ResourceType): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

export function findResource(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

/** The resource type for an object's apiVersion and kind. */
export function resourceFor(apiVersion: string, kind: string): ResourceType | undefined {
  const [g, v] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return RESOURCES.find((r) => r.group === g && r.version === v && r.kind === kind);
}

export const GIT_VERSION = 'v1.32.4';

export function versionInfo(): Obj {
  return {
    major: '1',
    minor: '32',
    gitVersion: GIT_VERSION,
    gitCommit: '59526cd4867447956156ae3a602fcbac10a2c335',
    gitTreeState: 'clean',
    buildDate: '2025-04-22T16:02:27Z',
    goVersion: 'go1.23.6',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

function resourceEntries(gv: string): Obj[] {
  const out: Obj[] = [];
  for (const r of RESOURCES) {
    if (groupVersion(r) !== gv) continue;
    out.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: VERBS,
      ...(r.shortNames ? { shortNames: r.shortNames } : {}),
    });
    if (r.status) out.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
  }
  return out;
}

/** GET /api/v1 and /apis/G/V: an APIResourceList, or undefined when the group version is not served. */
export function apiResourceList(gv: string): Obj | undefined {
  const resources = resourceEntries(gv);
  if (resources.length === 0) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources };
}

/** GET /api: APIVersions. */
export function apiVersions(serverAddress: string): Obj {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

export function groups(): string[] {
  return [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
}

/** GET /apis: APIGroupList. */
export function apiGroupList(): Obj {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups().map((g) => apiGroup(g)),
  };
}

/** GET /apis/G: APIGroup. */
export function apiGroup(g: string): Obj {
  const versions = [...new Set(RESOURCES.filter((r) => r.group === g).map((r) => r.version))];
  const gvs = versions.map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
  return { kind: 'APIGroup', apiVersion: 'v1', name: g, versions: gvs, preferredVersion: gvs[0] };
}
