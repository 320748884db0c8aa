// config/rbac.yaml against what Edgeport really asks of the API server: the real edgeport
// binary runs Services through create, update (another requested address, an address outside
// the pools, a type change) and delete against the fake API server, once without and once
// with ha.enabled; every request it made is mapped to RBAC attributes (API group,
// resource/subresource, verb, namespace) as kube-apiserver's RequestInfo does, and
// authorized with the manifest's rules as the RBAC authorizer does. Every request must be
// allowed, and every (group, resource, verb) the manifest grants must be used: all of them
// with HA, all but the Lease grants (named below) without. The manifest's shape is checked,
// and its resource names and verbs are resolved by the real kubectl against the fake API
// server's discovery.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { FakeApiServer, type Obj, type RequestRecord } from '../support/fake-apiserver.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { freePort, ROOT, startEdgeport, tempDir, writeConfig } from '../support/proc.ts';

const RBAC_FILE = join(ROOT, 'config/rbac.yaml');
const KUBECTL = '/usr/bin/kubectl';
const SA = { namespace: 'edgeport-system', name: 'edgeport' };
const RBAC_V1 = 'rbac.authorization.k8s.io/v1';
const TEST_UA = 'edgeport-rbac-test';

/**
 * The grants only HA uses: they must exist in the manifest, and are the only grants allowed
 * to go unused while ha.enabled is false (the ha.enabled run uses them all).
 */
const HA_LEASE_GRANTS = [
  'Role edgeport-system/edgeport-leases: coordination.k8s.io leases list',
  'Role edgeport-system/edgeport-leases: coordination.k8s.io leases watch',
  'Role edgeport-system/edgeport-leases: coordination.k8s.io leases create',
  'Role edgeport-system/edgeport-leases: coordination.k8s.io leases update',
];

// ---------------------------------------------------------------------------------------
// A small RBAC authorizer (k8s.io/apiserver RequestInfo + plugin/pkg/auth/authorizer/rbac)

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Attributes {
  resourceRequest: boolean;
  verb: string;
  /** Non-resource requests: the path. */
  path: string;
  group: string;
  /** resource, or resource/subresource. */
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
}

/** What RBAC sees of a request (RequestInfoFactory.NewRequestInfo, for the paths clients use). */
function attributes(r: Pick<RequestRecord, 'method' | 'path' | 'query'>): Attributes {
  const segs = r.path.split('/').filter(Boolean).map(decodeURIComponent);
  const method = r.method.toUpperCase();
  const nonResource: Attributes = { resourceRequest: false, verb: method.toLowerCase(), path: r.path, group: '', resource: '', namespace: undefined, name: undefined };
  let group: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) {
    group = '';
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    group = segs[1]!;
    rest = segs.slice(3);
  } else {
    return nonResource;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 2) {
    namespace = rest[1];
    if (rest.length > 2) rest = rest.slice(2);
  }
  const [resource, name, sub] = rest as [string, string | undefined, string | undefined];
  const q = new URLSearchParams(r.query);
  let verb: string;
  switch (method) {
    case 'GET':
    case 'HEAD':
      verb = name === undefined ? (q.get('watch') === 'true' || q.get('watch') === '1' ? 'watch' : 'list') : 'get';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name === undefined ? 'deletecollection' : 'delete';
      break;
    default:
      verb = method.toLowerCase();
  }
  return { resourceRequest: true, verb, path: r.path, group, resource: sub ? `${resource}/${sub}` : resource, namespace, name };
}

interface Grant {
  /** 'ClusterRole edgeport' or 'Role NS/NAME'. */
  role: string;
  rules: Rule[];
  /** undefined: cluster-wide (ClusterRoleBinding); else only this namespace. */
  namespace: string | undefined;
}

const has = (list: string[] | undefined, v: string) => !!list && (list.includes(v) || list.includes('*'));

function resourceMatches(rule: Rule, resource: string): string | undefined {
  for (const r of rule.resources ?? []) {
    if (r === '*' || r === resource) return r;
    const slash = resource.indexOf('/');
    if (slash >= 0 && r === `*${resource.slice(slash)}`) return r;
  }
  return undefined;
}

/** The rules bound to the ServiceAccount, with where they apply. */
function grants(docs: Obj[], sa: { namespace: string; name: string }): Grant[] {
  const out: Grant[] = [];
  const subjectIsSa = (b: Obj) => ((b.subjects ?? []) as Obj[]).some((s) => s.kind === 'ServiceAccount' && s.name === sa.name && s.namespace === sa.namespace);
  const find = (kind: string, name: string, namespace?: string) => docs.find((d) => d.kind === kind && d.metadata?.name === name && (kind === 'ClusterRole' || d.metadata?.namespace === namespace));
  for (const b of docs) {
    if ((b.kind !== 'ClusterRoleBinding' && b.kind !== 'RoleBinding') || !subjectIsSa(b)) continue;
    const ns: string | undefined = b.kind === 'RoleBinding' ? b.metadata.namespace : undefined;
    const role = find(b.roleRef.kind, b.roleRef.name, ns);
    if (!role) continue; // a binding to a missing role grants nothing
    out.push({ role: role.kind === 'Role' ? `Role ${role.metadata.namespace}/${role.metadata.name}` : `ClusterRole ${role.metadata.name}`, rules: role.rules ?? [], namespace: ns });
  }
  return out;
}

/** Each grant a rule spells out, as 'ROLE: GROUP RESOURCE VERB' ('core' for the "" group). */
function expand(gs: Grant[]): string[] {
  const out = new Set<string>();
  for (const g of gs) for (const r of g.rules) for (const grp of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) out.add(`${g.role}: ${grp || 'core'} ${res} ${v}`);
  return [...out];
}

/** The grants that allow the request (empty: denied). */
function authorize(gs: Grant[], a: Attributes): string[] {
  const by: string[] = [];
  for (const g of gs) {
    if (a.resourceRequest && g.namespace !== undefined && a.namespace !== g.namespace) continue;
    for (const r of g.rules) {
      if (!has(r.verbs, a.verb)) continue;
      if (!a.resourceRequest) {
        if (g.namespace === undefined && (r.nonResourceURLs ?? []).some((u) => u === a.path || u === '*' || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))))) by.push(`${g.role}: ${a.path} ${a.verb}`);
        continue;
      }
      if (!has(r.apiGroups, a.group)) continue;
      const res = resourceMatches(r, a.resource);
      if (res === undefined) continue;
      if (r.resourceNames?.length && (a.name === undefined || !r.resourceNames.includes(a.name))) continue;
      by.push(`${g.role}: ${(r.apiGroups!.includes(a.group) ? a.group : '*') || 'core'} ${res} ${r.verbs.includes(a.verb) ? a.verb : '*'}`);
    }
  }
  return by;
}

function loadManifest(): Obj[] {
  const docs = parseAllDocuments(readFileSync(RBAC_FILE, 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, [], `config/rbac.yaml parses: ${d.errors.join('; ')}`);
  return docs.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

const describeAttr = (a: Attributes) => (a.resourceRequest ? `${a.verb} ${a.group || 'core'} ${a.resource}${a.namespace ? ` in ${a.namespace}` : ''}` : `${a.verb} ${a.path}`);

// ---------------------------------------------------------------------------------------

test('rbac authorizer (this test\'s own): subresources, namespaces, watch vs list, resourceNames', () => {
  const docs: Obj[] = [
    { apiVersion: RBAC_V1, kind: 'ClusterRole', metadata: { name: 'c' }, rules: [{ apiGroups: [''], resources: ['services'], verbs: ['list', 'patch'] }] },
    { apiVersion: RBAC_V1, kind: 'ClusterRoleBinding', metadata: { name: 'c' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'c' }, subjects: [{ kind: 'ServiceAccount', ...SA }] },
    { apiVersion: RBAC_V1, kind: 'Role', metadata: { name: 'r', namespace: 'edgeport-system' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['update'], resourceNames: ['edgeport-leader'] }] },
    { apiVersion: RBAC_V1, kind: 'RoleBinding', metadata: { name: 'r', namespace: 'edgeport-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' }, subjects: [{ kind: 'ServiceAccount', ...SA }] },
    // Bound to someone else: grants the ServiceAccount nothing.
    { apiVersion: RBAC_V1, kind: 'ClusterRole', metadata: { name: 'all' }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] },
    { apiVersion: RBAC_V1, kind: 'ClusterRoleBinding', metadata: { name: 'all' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'all' }, subjects: [{ kind: 'ServiceAccount', namespace: 'default', name: 'edgeport' }] },
  ];
  const gs = grants(docs, SA);
  const table: [string, string, string, boolean][] = [
    ['GET', '/api/v1/services', '', true],
    ['GET', '/api/v1/services', 'watch=true&resourceVersion=5', false],
    ['GET', '/api/v1/namespaces/default/services/web', '', false],
    ['PATCH', '/api/v1/namespaces/default/services/web', '', true],
    ['PATCH', '/api/v1/namespaces/default/services/web/status', '', false],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/edgeport-system/leases/edgeport-leader', '', true],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/edgeport-system/leases/edgeport-vip-1', '', false],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/default/leases/edgeport-leader', '', false],
    ['GET', '/version', '', false],
  ];
  for (const [method, path, query, allowed] of table) {
    const a = attributes({ method, path, query });
    assert.equal(authorize(gs, a).length > 0, allowed, `${method} ${path}?${query} (${describeAttr(a)})`);
  }
  assert.deepEqual(attributes({ method: 'GET', path: '/apis/discovery.k8s.io/v1/endpointslices', query: 'watch=1' }), {
    resourceRequest: true, verb: 'watch', path: '/apis/discovery.k8s.io/v1/endpointslices', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: undefined, name: undefined,
  });
  assert.deepEqual(expand(gs).sort(), ['ClusterRole c: core services list', 'ClusterRole c: core services patch', 'Role edgeport-system/r: coordination.k8s.io leases update']);
});

test('config/rbac.yaml: a Namespace, the ServiceAccount, a ClusterRole and a Role with their bindings, nothing else', () => {
  const docs = loadManifest();
  assert.deepEqual(
    docs.map((d) => `${d.apiVersion} ${d.kind} ${d.metadata?.namespace ? `${d.metadata.namespace}/` : ''}${d.metadata?.name}`),
    [
      'v1 Namespace edgeport-system',
      'v1 ServiceAccount edgeport-system/edgeport',
      `${RBAC_V1} ClusterRole edgeport`,
      `${RBAC_V1} ClusterRoleBinding edgeport`,
      `${RBAC_V1} Role edgeport-system/edgeport-leases`,
      `${RBAC_V1} RoleBinding edgeport-system/edgeport-leases`,
    ],
  );
  const VERBS = new Set(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection']);
  for (const d of docs) {
    const where = `${d.kind} ${d.metadata.name}`;
    const keys = Object.keys(d).sort();
    if (d.kind === 'ClusterRole' || d.kind === 'Role') {
      assert.deepEqual(keys, ['apiVersion', 'kind', 'metadata', 'rules'], where);
      for (const [i, r] of (d.rules as Obj[]).entries()) {
        const at = `${where} rules[${i}]`;
        assert.deepEqual(Object.keys(r).sort(), ['apiGroups', 'resources', 'verbs'], `${at}: apiGroups, resources, verbs (no wildcards' friends: resourceNames, nonResourceURLs)`);
        for (const k of ['apiGroups', 'resources', 'verbs']) assert.ok(Array.isArray(r[k]) && r[k].length > 0 && r[k].every((x: unknown) => typeof x === 'string'), `${at}.${k}: a list of strings`);
        for (const k of ['apiGroups', 'resources', 'verbs']) assert.ok(!r[k].includes('*'), `${at}.${k}: no wildcard`);
        for (const v of r.verbs as string[]) assert.ok(VERBS.has(v), `${at}: verb ${v}`);
      }
    } else if (d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding') {
      assert.deepEqual(keys, ['apiVersion', 'kind', 'metadata', 'roleRef', 'subjects'], where);
      assert.deepEqual(d.subjects, [{ kind: 'ServiceAccount', name: SA.name, namespace: SA.namespace }], `${where} binds the ServiceAccount only`);
      assert.equal(d.roleRef.apiGroup, 'rbac.authorization.k8s.io', where);
      assert.ok(
        docs.some((r) => r.kind === d.roleRef.kind && r.metadata.name === d.roleRef.name && (r.kind === 'ClusterRole' || r.metadata.namespace === d.metadata.namespace)),
        `${where}: its roleRef ${d.roleRef.kind} ${d.roleRef.name} is in the file`,
      );
    } else {
      assert.deepEqual(keys, ['apiVersion', 'kind', 'metadata'], where);
    }
  }
  for (const g of HA_LEASE_GRANTS) assert.ok(expand(grants(docs, SA)).includes(g), `the HA grant "${g}" named by this test is in config/rbac.yaml`);
});

test('config/rbac.yaml: kubectl resolves every rule\'s resources and verbs against the API discovery', { skip: existsSync(KUBECTL) ? false : `${KUBECTL} is not installed`, timeout: 30_000 }, async (t) => {
  const api = new FakeApiServer();
  const url = await api.start();
  const tmp = tempDir('edgeport-rbac-');
  t.after(async () => {
    await api.stop();
    tmp.cleanup();
  });
  const kubeconfig = writeKubeconfig(url, { dir: tmp.dir });
  const kubectl = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(tmp.dir, 'cache'), ...args], { timeout: 20_000, env: { ...process.env, KUBECONFIG: '' } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: unknown }).code) || 1 : 0, stdout: String(stdout), stderr: String(stderr) }),
      ),
    );
  // kubectl refuses a name the server does not serve, so the cross-check can fail.
  const bogus = await kubectl('create', 'clusterrole', 'x', '--verb=list', '--resource=servicez', '--dry-run=client', '-o', 'json');
  assert.notEqual(bogus.code, 0);
  assert.match(bogus.stderr, /doesn't have a resource type "servicez"/);

  for (const d of loadManifest()) {
    if (d.kind !== 'ClusterRole' && d.kind !== 'Role') continue;
    for (const [i, rule] of (d.rules as Obj[]).entries()) {
      const resources = (rule.resources as string[]).map((r) => {
        const [res, sub] = r.split('/');
        return `${res}${rule.apiGroups[0] ? `.${rule.apiGroups[0]}` : ''}${sub ? `/${sub}` : ''}`;
      });
      assert.equal(rule.apiGroups.length, 1, 'one API group a rule (as kubectl create role writes them)');
      const args = d.kind === 'Role' ? ['create', 'role', 'x', '-n', d.metadata.namespace] : ['create', 'clusterrole', 'x'];
      const r = await kubectl(...args, `--verb=${rule.verbs.join(',')}`, `--resource=${resources.join(',')}`, '--dry-run=client', '-o', 'json');
      assert.equal(r.code, 0, `${d.kind} ${d.metadata.name} rules[${i}]: ${r.stderr}`);
      const made = (JSON.parse(r.stdout) as Obj).rules as Obj[];
      assert.deepEqual(made, [{ apiGroups: rule.apiGroups, resources: rule.resources, verbs: rule.verbs }], `${d.kind} ${d.metadata.name} rules[${i}] as kubectl writes it`);
    }
  }
});

/** Runs a Service through create, update and delete with the real binary; returns Edgeport's requests. */
async function serviceLifecycle(t: TestContext, opts: { ha: boolean }): Promise<RequestRecord[]> {
  const api = new FakeApiServer({ namespaces: ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'edgeport-system'] });
  const url = await api.start();
  t.after(() => api.stop());
  const tmp = tempDir('edgeport-rbac-');
  t.after(tmp.cleanup);
  for (const [name, ip] of [
    ['n1', '127.0.5.11'],
    ['n2', '127.0.5.12'],
  ] as const) {
    api.objects.put({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { conditions: [{ type: 'Ready', status: 'True' }], addresses: [{ type: 'InternalIP', address: ip }] } });
  }
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(url + path, { method, headers: { 'user-agent': TEST_UA, ...(body === undefined ? {} : { 'content-type': contentType }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as Obj;
  };
  const svc = (name: string) => api.objects.get('services', name, 'default') as Obj | undefined;
  const ingressIp = (name: string) => svc(name)?.status?.loadBalancer?.ingress?.[0]?.ip as string | undefined;
  const reasons = (name: string) => api.objects.list('events', 'default').filter((e) => e.involvedObject?.name === name).map((e) => e.reason as string);
  const waitFor = async (what: string, probe: () => unknown, ms = 10_000) => {
    for (const until = Date.now() + ms; !probe(); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > until) assert.fail(`timed out waiting for ${what}; edgeport said:\n${ep.lines.join('\n')}`);
    }
  };

  const adminPort = await freePort();
  const config = writeConfig(
    tmp.dir,
    `node: { name: edge-rbac }
announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
pools:
  - name: lab
    addresses: [ 127.0.5.0/29 ]
kubernetes:
  enabled: true
ha:
  enabled: ${opts.ha}
`,
  );
  const ep = await startEdgeport(config, adminPort, ['--kubeconfig', writeKubeconfig(url, { dir: tmp.dir })]);
  t.after(() => ep.stop('SIGKILL'));

  // Create: one Service gets an address, one asks for an address outside the pools.
  const lb = (name: string, annotations: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, annotations },
    spec: { type: 'LoadBalancer', ports: [{ port: 18080, protocol: 'TCP', targetPort: 8080 }] },
  });
  await call('POST', '/api/v1/namespaces/default/services', lb('web'));
  await call('POST', '/api/v1/namespaces/default/services', lb('pinned', { 'edgeport.io/loadBalancerIPs': '192.0.2.10' }));
  await waitFor('web gets 127.0.5.0', () => ingressIp('web') === '127.0.5.0' && reasons('web').includes('IPAllocated'));
  await waitFor('AllocationFailed on pinned', () => reasons('pinned').includes('AllocationFailed'));
  assert.deepEqual(svc('pinned')!.metadata.finalizers, ['edgeport.io/load-balancer'], 'the finalizer comes before the address');
  if (opts.ha) await waitFor('the VIP Lease', () => api.objects.get('leases', 'edgeport-vip-127-0-5-0', 'edgeport-system')?.spec?.holderIdentity === 'edge-rbac');

  // Update: another requested address; then the type changes away from LoadBalancer.
  await call('PATCH', '/api/v1/namespaces/default/services/web', { metadata: { annotations: { 'edgeport.io/loadBalancerIPs': '127.0.5.3' } } }, 'application/merge-patch+json');
  await waitFor('web moves to 127.0.5.3', () => ingressIp('web') === '127.0.5.3' && reasons('web').includes('IPReleased'));
  await call('PATCH', '/api/v1/namespaces/default/services/web', { spec: { type: 'NodePort' } }, 'application/merge-patch+json');
  await waitFor('web loses the finalizer once it is no longer a LoadBalancer', () => !svc('web')!.metadata.finalizers?.length);

  // Delete: the finalizer goes, the Service with it.
  await call('DELETE', '/api/v1/namespaces/default/services/pinned');
  await waitFor('pinned is gone', () => svc('pinned') === undefined);
  await call('DELETE', '/api/v1/namespaces/default/services/web');
  assert.equal(await ep.stop('SIGTERM'), 0);

  const mine = api.requests.filter((r) => r.userAgent !== TEST_UA);
  assert.ok(mine.length > 0, 'edgeport made requests');
  return mine;
}

/** Authorizes each request with config/rbac.yaml: the denied ones, the grants used, and what RBAC saw. */
function check(requests: RequestRecord[]): { denied: string[]; used: Set<string>; seen: Set<string>; all: string[] } {
  const gs = grants(loadManifest(), SA);
  const used = new Set<string>();
  const denied: string[] = [];
  const seen = new Set<string>();
  for (const r of requests) {
    const a = attributes(r);
    seen.add(describeAttr(a));
    const by = authorize(gs, a);
    if (by.length === 0) denied.push(`${r.method} ${r.path}${r.query ? `?${r.query}` : ''} (${describeAttr(a)})`);
    for (const g of by) used.add(g);
  }
  return { denied, used, seen, all: expand(gs) };
}

const SERVICE_CALLS = [
  'list core services',
  'watch core services',
  'patch core services in default',
  'patch core services/status in default',
  'list core nodes',
  'watch core nodes',
  'list discovery.k8s.io endpointslices',
  'watch discovery.k8s.io endpointslices',
  'create core events in default',
];

test('config/rbac.yaml allows every request Edgeport makes through a Service\'s life, and grants nothing unused but the HA Leases', { timeout: 60_000 }, async (t) => {
  const c = check(await serviceLifecycle(t, { ha: false }));
  t.diagnostic(`as RBAC sees Edgeport's requests: ${[...c.seen].sort().join('; ')}`);
  assert.deepEqual(c.denied, [], 'every request Edgeport made is allowed by config/rbac.yaml');
  // What the flow must have exercised (so "nothing unused" below means something).
  for (const want of SERVICE_CALLS) assert.ok(c.seen.has(want), `the flow made a "${want}" request`);
  const unused = c.all.filter((g) => !c.used.has(g) && !HA_LEASE_GRANTS.includes(g));
  assert.deepEqual(unused, [], 'every grant of config/rbac.yaml is used (least privilege), but the HA Leases');
});

test('config/rbac.yaml with ha.enabled: the Lease requests are allowed too, and every grant is used', { timeout: 60_000 }, async (t) => {
  const c = check(await serviceLifecycle(t, { ha: true }));
  t.diagnostic(`as RBAC sees Edgeport's requests: ${[...c.seen].sort().join('; ')}`);
  assert.deepEqual(c.denied, [], 'every request Edgeport made is allowed by config/rbac.yaml');
  for (const want of [...SERVICE_CALLS, 'list coordination.k8s.io leases in edgeport-system', 'watch coordination.k8s.io leases in edgeport-system', 'create coordination.k8s.io leases in edgeport-system', 'update coordination.k8s.io leases in edgeport-system']) {
    assert.ok(c.seen.has(want), `the flow made a "${want}" request`);
  }
  assert.deepEqual(c.all.filter((g) => !c.used.has(g)), [], 'every grant of config/rbac.yaml is used');
});
