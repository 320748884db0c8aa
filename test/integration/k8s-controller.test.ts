// KubeController (lb/k8s/controller.ts) with the real client-node informers (lb/k8s/client.ts)
// against the fake API server: addresses, status, finalizers, Events, restart stability and
// watch recovery, as a user sees them through the API.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { test, type TestContext } from 'node:test';
import { builtinDefaults } from '../../lb/config/parse.ts';
import { createLogger, silentLogger } from '../../lb/core/log.ts';
import { HealthChecker, type HealthChange } from '../../lb/health/checker.ts';
import { listenerKey, type Config, type Defaults, type KubernetesSpec, type PoolSpec } from '../../lb/core/types.ts';
import { Allocator } from '../../lb/ipam/allocator.ts';
import { createKubeApi, makeKubeConfig, type KubeApi } from '../../lb/k8s/client.ts';
import { KubeController, type K8sVirtualService } from '../../lb/k8s/controller.ts';
import { FINALIZER } from '../../lb/k8s/convert.ts';
import { FakeApiServer, type Obj } from '../support/fake-apiserver.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { waitFor } from '../support/wait.ts';

const POOLS: PoolSpec[] = [
  { name: 'default', addresses: ['10.200.0.10-10.200.0.20'], autoAssign: true, avoidBuggyIPs: false },
  // Only for Services that name it (edgeport.io/address-pool) or ask for one of its addresses.
  { name: 'lan', addresses: ['10.201.0.1-10.201.0.5'], autoAssign: false, avoidBuggyIPs: false },
];
const KUBE: KubernetesSpec = {
  enabled: true,
  nodeHealthCheck: { type: 'http', port: 10256, path: '/healthz' },
  kubeconfig: null,
  loadBalancerClass: 'edgeport.io/lb',
  claimUnclassed: true,
  nodeAddressType: 'InternalIP',
};


interface SetupOptions {
  pools?: PoolSpec[];
  kube?: Partial<KubernetesSpec>;
  defaults?: Partial<Defaults>;
}

interface Started {
  ctl: KubeController;
  /** Every list handed to onChange, in order. */
  seen: K8sVirtualService[][];
  /** at[i]: how many requests the fake had received when seen[i] was handed over. */
  at: number[];
  cfg: Pick<Config, 'kubernetes' | 'defaults'>;
}

interface Env {
  api: FakeApiServer;
  kubeconfig: string;
  call(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: Obj }>;
  /** Merge patch of a Service (sub: 'status' for the status subresource). */
  patchSvc(name: string, body: unknown, sub?: string): Promise<{ status: number; body: Obj }>;
  patchNode(name: string, body: unknown, sub?: string): Promise<{ status: number; body: Obj }>;
  svc(name: string): Obj | undefined;
  events(name: string): string[];
  /** wrap: stands between the controller and the real client (to meddle with calls). */
  start(opts?: { wrap?: (api: KubeApi) => KubeApi; isLeader?: () => boolean }): Promise<Started>;
}

async function setup(t: TestContext, opts: SetupOptions = {}): Promise<Env> {
  const api = new FakeApiServer();
  const url = await api.start();
  const kubeconfig = writeKubeconfig(url);
  t.after(() => api.stop());
  for (const [name, ip, ext] of [
    ['n1', '127.0.0.2', '192.0.2.2'],
    ['n2', '127.0.0.3', '192.0.2.3'],
  ] as const) {
    api.objects.put(nodeObj(name, ip, ext));
  }
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(url + path, { method, headers: { 'content-type': contentType }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as Obj };
  };
  const merge = 'application/merge-patch+json';
  return {
    api,
    kubeconfig,
    call,
    patchSvc: (name, body, sub) => call('PATCH', `/api/v1/namespaces/default/services/${name}${sub ? `/${sub}` : ''}`, body, merge),
    patchNode: (name, body, sub) => call('PATCH', `/api/v1/nodes/${name}${sub ? `/${sub}` : ''}`, body, merge),
    svc: (name) => api.objects.get('services', name, 'default'),
    events: (name) =>
      api.objects
        .list('events', 'default')
        .filter((e) => e.involvedObject?.name === name)
        .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion)) // in the order written
        .map((e) => `${e.type} ${e.reason}: ${e.message}`),
    async start(startOpts = {}) {
      const seen: K8sVirtualService[][] = [];
      const at: number[] = [];
      const cfg = { kubernetes: { ...KUBE, ...opts.kube }, defaults: { ...builtinDefaults(), ...opts.defaults } };
      const real = createKubeApi({ kc: makeKubeConfig(kubeconfig), instance: 'node-a' });
      const ctl = new KubeController({
        api: startOpts.wrap ? startOpts.wrap(real) : real,
        ...(startOpts.isLeader ? { isLeader: startOpts.isLeader } : {}),
        cfg,
        allocator: new Allocator(opts.pools ?? POOLS),
        log: process.env.K8S_DEBUG ? createLogger({ level: 'debug' }) : silentLogger,
        onChange: (s) => {
          seen.push(s);
          at.push(api.requests.length);
        },
        debounceMs: 20,
        backoffMs: 50,
        maxBackoffMs: 500,
      });
      t.after(() => ctl.stop());
      await ctl.start();
      return { ctl, seen, at, cfg };
    },
  };
}

function nodeObj(name: string, ip: string, ext?: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: {
      conditions: [{ type: 'Ready', status: 'True' }],
      addresses: [{ type: 'InternalIP', address: ip }, ...(ext ? [{ type: 'ExternalIP', address: ext }] : [])],
    },
  };
}

const lbService = (name: string, extra: Obj = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, ...(extra.metadata ?? {}) },
  spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...(extra.spec ?? {}) },
});

const ingressOf = (o: Obj | undefined): unknown => o?.status?.loadBalancer?.ingress;

test('KubeController gives a LoadBalancer Service a pool address: finalizer, status, IPAllocated, NodePort backends', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const { seen } = await e.start();
  assert.equal((await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'))).status, 201);
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('theirs', { spec: { loadBalancerClass: 'example.com/other' } }));

  const web = await waitFor('the status', () => (ingressOf(e.svc('web')) ? e.svc('web') : undefined));
  assert.deepEqual(ingressOf(web), [{ ip: '10.200.0.10', ipMode: 'Proxy' }]);
  assert.deepEqual(web.metadata.finalizers, [FINALIZER]);
  await waitFor('the IPAllocated event', () => e.events('web').length > 0);
  assert.deepEqual(e.events('web'), ['Normal IPAllocated: Assigned IP 10.200.0.10 from pool default']);

  const nodePort = web.spec.ports[0].nodePort as number;
  const last = await waitFor('the virtual service', () => seen.at(-1)?.length === 1 && seen.at(-1));
  assert.equal(last[0]!.name, 'k8s/default/web');
  assert.equal(last[0]!.vip, '10.200.0.10');
  assert.deepEqual(
    last[0]!.ports.map((p) => [p.port, p.protocol, p.backends.map((b) => `${b.address}:${b.port}`)]),
    [[80, 'TCP', [`127.0.0.2:${nodePort}`, `127.0.0.3:${nodePort}`]]],
  );

  // Another implementation's Service is left alone.
  const theirs = e.svc('theirs')!;
  assert.equal(theirs.metadata.finalizers, undefined);
  assert.equal(ingressOf(theirs), undefined);
  assert.deepEqual(e.events('theirs'), []);
  // The status is written once (merge patch on /status), not on every reconcile.
  const statusPatches = e.api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status'));
  assert.deepEqual(statusPatches.map((r) => [r.path, r.contentType]), [['/api/v1/namespaces/default/services/web/status', 'application/merge-patch+json']]);
});

test('KubeController refuses a requested address outside every pool: AllocationFailed and no address', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const { seen } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('fixed', { spec: { loadBalancerIP: '192.0.2.50' } }));
  await waitFor('the AllocationFailed event', () => e.events('fixed').length > 0);
  assert.equal(e.events('fixed').length, 1);
  assert.match(e.events('fixed')[0]!, /^Warning AllocationFailed: Cannot assign "192\.0\.2\.50" to "k8s\/default\/fixed": it lies in no pool/);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(ingressOf(e.svc('fixed')), undefined);
  assert.deepEqual(e.svc('fixed')!.metadata.finalizers, [FINALIZER]);
  assert.deepEqual(seen.at(-1) ?? [], []);
  assert.equal(e.events('fixed').length, 1, 'one Event per distinct failure, not one per reconcile');

  // A requested address inside the pool is honoured.
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('pinned', { metadata: { annotations: { 'edgeport.io/loadBalancerIPs': '10.200.0.15' } } }));
  const pinned = await waitFor('the pinned status', () => (ingressOf(e.svc('pinned')) ? e.svc('pinned') : undefined));
  assert.deepEqual(ingressOf(pinned), [{ ip: '10.200.0.15', ipMode: 'Proxy' }]);
});

test('KubeController on delete: releases the address, emits IPReleased, removes the finalizer; the object goes', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const { seen, at } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await waitFor('the status', () => ingressOf(e.svc('web')));
  await waitFor('the virtual service', () => seen.at(-1)?.length === 1);

  const del = await e.call('DELETE', '/api/v1/namespaces/default/services/web');
  assert.equal(del.status, 200);
  assert.ok(del.body.metadata.deletionTimestamp, 'the finalizer holds the object');
  await waitFor('the object gone', () => e.svc('web') === undefined);
  assert.deepEqual(seen.at(-1), [], 'the virtual service is gone');
  await waitFor('IPReleased', () => e.events('web').some((x) => x.includes('IPReleased')));
  assert.deepEqual(e.events('web').map((x) => x.split(':')[0]).sort(), ['Normal IPAllocated', 'Normal IPReleased']);
  // The finalizer went after the virtual service was withdrawn (onChange([]) returned).
  const removal = e.api.requests.findIndex((r) => r.method === 'PATCH' && r.path.endsWith('/services/web') && r.body.includes('"finalizers":[]'));
  assert.ok(removal >= at.at(-1)!, `finalizer removal (request ${removal}) before onChange([]) (request ${at.at(-1)})`);

  // The address is free again: the next Service gets it.
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('next'));
  const next = await waitFor('the next status', () => (ingressOf(e.svc('next')) ? e.svc('next') : undefined));
  assert.deepEqual(ingressOf(next), [{ ip: '10.200.0.10', ipMode: 'Proxy' }]);
});

test('KubeController releases a Service that stops being ours (type changed) and takes the finalizer off', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const { seen } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await waitFor('the status', () => ingressOf(e.svc('web')));
  await e.call('PATCH', '/api/v1/namespaces/default/services/web', { spec: { type: 'ClusterIP' } }, 'application/merge-patch+json');
  await waitFor('the finalizer removed', () => (e.svc('web')!.metadata.finalizers ?? []).length === 0);
  await waitFor('IPReleased', () => e.events('web').some((x) => x.includes('IPReleased')));
  assert.deepEqual(seen.at(-1), []);
  assert.ok(e.svc('web'), 'the Service itself stays');
});

test('KubeController after a restart keeps every address from status before allocating new ones', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const first = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('m-one'));
  await waitFor('m-one', () => ingressOf(e.svc('m-one')));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('m-two'));
  await waitFor('m-two', () => ingressOf(e.svc('m-two')));
  assert.deepEqual(ingressOf(e.svc('m-one')), [{ ip: '10.200.0.10', ipMode: 'Proxy' }]);
  assert.deepEqual(ingressOf(e.svc('m-two')), [{ ip: '10.200.0.11', ipMode: 'Proxy' }]);
  await first.ctl.stop();

  // While Edgeport is down a Service appears whose name sorts first: a naive restart would
  // hand it 10.200.0.10 and move m-one.
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('a-new'));
  const second = await e.start();
  const aNew = await waitFor('a-new', () => (ingressOf(e.svc('a-new')) ? e.svc('a-new') : undefined));
  assert.deepEqual(ingressOf(aNew), [{ ip: '10.200.0.12', ipMode: 'Proxy' }]);
  assert.deepEqual(ingressOf(e.svc('m-one')), [{ ip: '10.200.0.10', ipMode: 'Proxy' }]);
  assert.deepEqual(ingressOf(e.svc('m-two')), [{ ip: '10.200.0.11', ipMode: 'Proxy' }]);
  assert.deepEqual(second.ctl.services().map((s) => `${s.name} ${s.vip}`), ['k8s/default/a-new 10.200.0.12', 'k8s/default/m-one 10.200.0.10', 'k8s/default/m-two 10.200.0.11']);
  // Kept addresses are not announced again as new allocations.
  assert.equal(e.events('m-one').filter((x) => x.includes('IPAllocated')).length, 1);
});

test('KubeController recovers from dropped watches and still sees later changes', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  await e.start();
  await waitFor('three watches', () => e.api.openWatches === 3);
  assert.equal(e.api.dropWatches(), 3);
  await waitFor('the watches back', () => e.api.openWatches === 3);
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('late'));
  const late = await waitFor('late status', () => (ingressOf(e.svc('late')) ? e.svc('late') : undefined));
  assert.deepEqual(ingressOf(late), [{ ip: '10.200.0.10', ipMode: 'Proxy' }]);

  // The API server goes away and comes back: the watches come back too.
  await e.api.stop();
  await new Promise((r) => setTimeout(r, 300));
  await e.api.start();
  await waitFor('the watches back after an outage', () => e.api.openWatches === 3, 10_000);
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('later'));
  const later = await waitFor('later status', () => (ingressOf(e.svc('later')) ? e.svc('later') : undefined));
  assert.deepEqual(ingressOf(later), [{ ip: '10.200.0.11', ipMode: 'Proxy' }]);
});

// --- helpers for the tests below ---------------------------------------------------------

const vsOf = (list: K8sVirtualService[] | undefined, name: string): K8sVirtualService | undefined => list?.find((s) => s.name === `k8s/default/${name}`);
/** "address:port*weight" of every backend of the virtual service's first port. */
const backendsOf = (vs: K8sVirtualService | undefined): string[] | undefined => vs?.ports[0]?.backends.map((b) => `${b.address}:${b.port}*${b.weight}`);
const portsOf = (vs: K8sVirtualService | undefined): string[] | undefined => vs?.ports.map((p) => `${p.port}/${p.protocol}`);
const ipOf = (o: Obj | undefined): string | undefined => (ingressOf(o) as { ip?: string }[] | undefined)?.[0]?.ip;
const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
/** upstream's PortStatus.error format (k8s.io/api core/v1 types.go). */
const PORT_ERROR_FORMAT = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;

/**
 * Waits until the controller has reconciled over a change made through the API: `before` is
 * its generation taken before the change, whose watch event triggers a reconcile.
 */
async function reconciled(ctl: KubeController, before: number): Promise<void> {
  await waitFor('a reconcile', () => ctl.generation > before);
  await ctl.reconcileNow();
}

test('KubeController honours spec.loadBalancerIP, edgeport.io/loadBalancerIPs and edgeport.io/address-pool', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('by-spec', { spec: { loadBalancerIP: '10.200.0.15' } }));
  // The first requested address lies in no pool: the next one is taken.
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('by-ann', { metadata: { annotations: { 'edgeport.io/loadBalancerIPs': '192.0.2.1, 10.200.0.16' } } }));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('in-lan', { metadata: { annotations: { 'edgeport.io/address-pool': 'lan' } } }));
  // A requested address outside the pool the Service names is refused.
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('wrong-pool', { spec: { loadBalancerIP: '10.200.0.17' }, metadata: { annotations: { 'edgeport.io/address-pool': 'lan' } } }));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('no-pool', { metadata: { annotations: { 'edgeport.io/address-pool': 'nope' } } }));

  await waitFor('every status', () => ['by-spec', 'by-ann', 'in-lan'].every((n) => ipOf(e.svc(n))));
  assert.deepEqual(['by-spec', 'by-ann', 'in-lan'].map((n) => ipOf(e.svc(n))), ['10.200.0.15', '10.200.0.16', '10.201.0.1']);
  assert.deepEqual(e.events('in-lan'), ['Normal IPAllocated: Assigned IP 10.201.0.1 from pool lan']);
  await waitFor('AllocationFailed for wrong-pool and no-pool', () => e.events('wrong-pool').length > 0 && e.events('no-pool').length > 0);
  assert.deepEqual(e.events('wrong-pool'), ['Warning AllocationFailed: Cannot assign "10.200.0.17" to "k8s/default/wrong-pool": it does not lie in pool "lan"']);
  assert.match(e.events('no-pool')[0]!, /^Warning AllocationFailed: Cannot allocate an address for "k8s\/default\/no-pool": there is no pool "nope"/);
  await ctl.reconcileNow();
  assert.equal(ipOf(e.svc('wrong-pool')), undefined);
  assert.deepEqual(ctl.services().map((s) => `${s.name} ${s.vip}`), ['k8s/default/by-ann 10.200.0.16', 'k8s/default/by-spec 10.200.0.15', 'k8s/default/in-lan 10.201.0.1']);

  // The user asks for another address: the Service moves there (IPReleased, IPAllocated)...
  await e.patchSvc('by-spec', { spec: { loadBalancerIP: '10.200.0.18' } });
  await waitFor('by-spec moved', () => ipOf(e.svc('by-spec')) === '10.200.0.18');
  await waitFor('the move events', () => e.events('by-spec').length === 3);
  assert.deepEqual(e.events('by-spec').slice(1), ['Normal IPReleased: Released IP 10.200.0.15: the Service asks for 10.200.0.18', 'Normal IPAllocated: Assigned IP 10.200.0.18 from pool default']);
  // ...but when that address is taken it keeps the one it has: AllocationFailed.
  await e.patchSvc('by-spec', { spec: { loadBalancerIP: '10.201.0.1' } });
  await waitFor('AllocationFailed for the move', () => e.events('by-spec').length === 4);
  assert.match(e.events('by-spec')[3]!, /^Warning AllocationFailed: Cannot assign "10\.201\.0\.1" to "k8s\/default\/by-spec": it is in use by "k8s\/default\/in-lan".*; k8s\/default\/by-spec keeps 10\.200\.0\.18$/);
  await ctl.reconcileNow();
  assert.equal(ipOf(e.svc('by-spec')), '10.200.0.18');
  assert.equal(vsOf(ctl.services(), 'by-spec')?.vip, '10.200.0.18');

  // Another pool named: the Service moves into it.
  await e.patchSvc('by-ann', { metadata: { annotations: { 'edgeport.io/loadBalancerIPs': null, 'edgeport.io/address-pool': 'lan' } } });
  await waitFor('by-ann in lan', () => ipOf(e.svc('by-ann')) === '10.201.0.2');
  await waitFor('the virtual service moved', () => vsOf(ctl.services(), 'by-ann')?.vip === '10.201.0.2');
});

const twoPorts = (a: number, b: number): Obj[] => [
  { name: `p${a}`, port: a, protocol: 'TCP' },
  { name: `p${b}`, port: b, protocol: 'TCP' },
];
const shared = (name: string, ports: Obj[], extra: Obj = {}): Obj =>
  lbService(name, { metadata: { annotations: { 'edgeport.io/allow-shared-ip': 'k1', ...(extra.annotations ?? {}) } }, spec: { ports, ...(extra.spec ?? {}) } });

test('KubeController: Services with one edgeport.io/allow-shared-ip key and disjoint ports share a VIP; a port clash gets another address or AllocationFailed', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', shared('a', [{ name: 'http', port: 80, protocol: 'TCP' }]));
  await waitFor('a', () => ipOf(e.svc('a')));
  await e.call('POST', '/api/v1/namespaces/default/services', shared('b', twoPorts(443, 53).map((p, i) => (i === 1 ? { ...p, protocol: 'UDP' } : p))));
  await waitFor('b', () => ipOf(e.svc('b')));
  assert.equal(ipOf(e.svc('a')), '10.200.0.10');
  assert.equal(ipOf(e.svc('b')), '10.200.0.10', 'same key, no port clash: one VIP');

  // Allocated with a clashing port: the allocator hands out another address.
  await e.call('POST', '/api/v1/namespaces/default/services', shared('c', [{ name: 'http', port: 80, protocol: 'TCP' }]));
  await waitFor('c', () => ipOf(e.svc('c')));
  assert.equal(ipOf(e.svc('c')), '10.200.0.11');
  // Asking for the shared address with a clashing port, or without the key: AllocationFailed.
  await e.call('POST', '/api/v1/namespaces/default/services', shared('d', [{ name: 'dns', port: 53, protocol: 'UDP' }], { spec: { loadBalancerIP: '10.200.0.10' } }));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('nokey', { spec: { loadBalancerIP: '10.200.0.10', ports: [{ name: 'x', port: 8080, protocol: 'TCP' }] } }));
  await waitFor('the two failures', () => e.events('d').length > 0 && e.events('nokey').length > 0);
  assert.deepEqual(e.events('d'), ['Warning AllocationFailed: Cannot assign "10.200.0.10" to "k8s/default/d": "k8s/default/b" already serves 53/UDP on it']);
  assert.deepEqual(e.events('nokey'), ['Warning AllocationFailed: Cannot assign "10.200.0.10" to "k8s/default/nokey": it is in use by "k8s/default/a" (no sharing key was given)']);
  await ctl.reconcileNow();
  assert.equal(ipOf(e.svc('d')), undefined);
  assert.deepEqual(
    ctl.services().map((s) => `${s.name} ${s.vip} ${portsOf(s)}`),
    ['k8s/default/a 10.200.0.10 80/TCP', 'k8s/default/b 10.200.0.10 443/TCP,53/UDP', 'k8s/default/c 10.200.0.11 80/TCP'],
  );
});

test('KubeController on a shared VIP: a port added that another Service serves stays unserved with ports[].error PortClash, until it is free', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl, seen } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', shared('a', [{ name: 'http', port: 80, protocol: 'TCP' }]));
  await e.call('POST', '/api/v1/namespaces/default/services', shared('b', [{ name: 'https', port: 443, protocol: 'TCP' }]));
  await waitFor('both served', () => ctl.services().length === 2 && ipOf(e.svc('b')));
  const a0 = structuredClone(vsOf(ctl.services(), 'a'));

  await e.patchSvc('b', { spec: { ports: twoPorts(443, 80) } });
  await waitFor('the PortClash in status', () => (ingressOf(e.svc('b')) as Obj[])[0]?.ports);
  assert.deepEqual(ingressOf(e.svc('b')), [
    { ip: '10.200.0.10', ipMode: 'Proxy', ports: [{ port: 443, protocol: 'TCP' }, { port: 80, protocol: 'TCP', error: 'edgeport.io/PortClash' }] },
  ]);
  assert.match((ingressOf(e.svc('b')) as Obj[])[0].ports[1].error, PORT_ERROR_FORMAT);
  await waitFor('the AllocationFailed event', () => e.events('b').some((x) => x.includes('AllocationFailed')));
  assert.deepEqual(e.events('b').filter((x) => x.includes('AllocationFailed')), [
    'Warning AllocationFailed: Cannot serve 80/TCP (served by "k8s/default/a") of "k8s/default/b" on 10.200.0.10: another Service sharing the address serves it; its other ports are served',
  ]);
  await ctl.reconcileNow();
  // Never two Services on one listener: b keeps its address and serves 443 only.
  assert.deepEqual(portsOf(vsOf(ctl.services(), 'b')), ['443/TCP']);
  assert.equal(vsOf(ctl.services(), 'b')?.vip, '10.200.0.10');
  for (const list of seen) {
    const keys = list.flatMap((s) => s.ports.map((p) => `${s.vip}:${p.port}/${p.protocol}`));
    assert.equal(new Set(keys).size, keys.length, `a listener handed over twice: ${keys}`);
  }
  assert.deepEqual(vsOf(ctl.services(), 'a'), a0);

  // a goes: port 80 is b's now, and the error leaves the status.
  await e.call('DELETE', '/api/v1/namespaces/default/services/a');
  await waitFor('b serves both ports', () => sameJson(portsOf(vsOf(ctl.services(), 'b')), ['443/TCP', '80/TCP']));
  await waitFor('the port errors cleared', () => sameJson(ingressOf(e.svc('b')), [{ ip: '10.200.0.10', ipMode: 'Proxy' }]));
  assert.equal(vsOf(ctl.services(), 'b')?.vip, '10.200.0.10');
});

test('KubeController.setPortErrors writes the bind failures the app reports as ports[].error, and clears them', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web', { spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] } }));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('other'));
  await waitFor('both statuses', () => ipOf(e.svc('web')) && ipOf(e.svc('other')));
  const otherIngress = ingressOf(e.svc('other'));
  const statusPatches = () => e.api.requests.filter((r) => r.method === 'PATCH' && r.path === '/api/v1/namespaces/default/services/web/status').length;
  const before = statusPatches();

  ctl.setPortErrors(new Map([
    ['k8s/default/web', [{ port: 53, protocol: 'UDP', error: 'edgeport.io/BindFailed' }]],
    ['k8s/default/gone', [{ port: 80, protocol: 'TCP', error: 'edgeport.io/BindFailed' }]],
  ]));
  const vip = ipOf(e.svc('web'))!;
  const want = [{ ip: vip, ipMode: 'Proxy', ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP', error: 'edgeport.io/BindFailed' }] }];
  await waitFor('the port error in status', () => sameJson(ingressOf(e.svc('web')), want));
  // The same errors again change nothing; a reason that is no valid PortStatus.error is replaced.
  ctl.setPortErrors(new Map([['k8s/default/web', [{ port: 53, protocol: 'udp', error: 'edgeport.io/BindFailed' }]]]));
  await ctl.reconcileNow();
  assert.equal(statusPatches(), before + 1);
  ctl.setPortErrors(new Map([['k8s/default/web', [{ port: 80, protocol: 'TCP', error: 'EADDRINUSE: address already in use' }]]]));
  await waitFor('the replaced reason', () => (ingressOf(e.svc('web')) as Obj[])[0].ports?.[0]?.error === 'edgeport.io/BindFailed');
  assert.deepEqual((ingressOf(e.svc('web')) as Obj[])[0].ports, [{ port: 80, protocol: 'TCP', error: 'edgeport.io/BindFailed' }, { port: 53, protocol: 'UDP' }]);
  for (const p of (ingressOf(e.svc('web')) as Obj[])[0].ports) if (p.error) assert.match(p.error, PORT_ERROR_FORMAT);
  // The listener stays wanted (the app keeps trying to bind it).
  assert.deepEqual(portsOf(vsOf(ctl.services(), 'web')), ['80/TCP', '53/UDP']);

  ctl.setPortErrors(new Map());
  await waitFor('the errors cleared', () => sameJson(ingressOf(e.svc('web')), [{ ip: vip, ipMode: 'Proxy' }]));
  assert.deepEqual(ingressOf(e.svc('other')), otherIngress);
});

test('KubeController backends follow the nodes: joining, leaving, NotReady, excluded by label, to be deleted; cordoned nodes stay', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  const np = (await waitFor('status', () => (ipOf(e.svc('web')) ? e.svc('web') : undefined))).spec.ports[0].nodePort as number;
  const be = (...ips: string[]) => ips.map((ip) => `${ip}:${np}*1`);
  const backends = (want: string[], what: string) => waitFor(what, () => sameJson(backendsOf(vsOf(ctl.services(), 'web')), want));
  await backends(be('127.0.0.2', '127.0.0.3'), 'two nodes');

  assert.equal((await e.call('POST', '/api/v1/nodes', nodeObj('n3', '127.0.0.4'))).status, 201);
  await backends(be('127.0.0.2', '127.0.0.3', '127.0.0.4'), 'n3 joined');
  await e.patchNode('n2', { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, 'status');
  await backends(be('127.0.0.2', '127.0.0.4'), 'n2 NotReady out');
  await e.patchNode('n3', { metadata: { labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': '' } } });
  await backends(be('127.0.0.2'), 'n3 excluded');
  await e.patchNode('n2', { status: { conditions: [{ type: 'Ready', status: 'True' }] } }, 'status');
  await backends(be('127.0.0.2', '127.0.0.3'), 'n2 Ready again');
  const gen = ctl.generation;
  await e.patchNode('n1', { spec: { unschedulable: true, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] } });
  // Cordoned: kept (KEP-3458). A reconcile over the change must have run before we look.
  await reconciled(ctl, gen);
  assert.equal(e.api.objects.get('nodes', 'n1')!.spec.unschedulable, true);
  assert.deepEqual(backendsOf(vsOf(ctl.services(), 'web')), be('127.0.0.2', '127.0.0.3'));
  await e.patchNode('n1', { spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1700000000', effect: 'NoSchedule' }] } });
  await backends(be('127.0.0.3'), 'n1 to be deleted');
  assert.equal((await e.call('DELETE', '/api/v1/nodes/n2')).status, 200);
  await backends([], 'n2 gone');
  await e.patchNode('n3', { metadata: { labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': null } } });
  await backends(be('127.0.0.4'), 'n3 back');
  // The address never moved through all of it.
  assert.equal(vsOf(ctl.services(), 'web')?.vip, '10.200.0.10');
  assert.equal(ipOf(e.svc('web')), '10.200.0.10');
});

/** HTTP servers answering `code` on one port in the NodePort range that every address has free. */
async function healthzPair(t: TestContext, answers: [ip: string, code: number][]): Promise<http.Server[]> {
  const start = 31000 + (process.pid % 1500);
  for (let port = start; port < start + 200; port++) {
    const servers: http.Server[] = [];
    try {
      for (const [ip, code] of answers) {
        const srv = http.createServer((_req, res) => res.writeHead(code).end());
        servers.push(srv);
        srv.listen(port, ip);
        await once(srv, 'listening');
      }
      t.after(() => servers.forEach((srv) => srv.close()));
      return servers;
    } catch {
      servers.forEach((srv) => srv.close());
    }
  }
  throw new Error('no port free on every address');
}

test('KubeController with externalTrafficPolicy Local: health checks on healthCheckNodePort keep out nodes whose /healthz is not 200; wrr weights are ready local endpoints', { timeout: 15_000 }, async (t) => {
  const e = await setup(t, { defaults: { healthCheck: { interval: 50, timeout: 500, rise: 1, fall: 2, path: '/healthz' } } });
  // kube-proxy on each "node": n1 has a local endpoint (200), n2 has none (503). The port is
  // one both loopback addresses have free, given to the Service as its healthCheckNodePort.
  const servers = await healthzPair(t, [
    ['127.0.0.2', 200],
    ['127.0.0.3', 503],
  ]);
  const hcPort = (servers[0]!.address() as { port: number }).port;
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web', { spec: { externalTrafficPolicy: 'Local', healthCheckNodePort: hcPort }, metadata: { annotations: { 'edgeport.io/scheduler': 'wrr' } } }));
  const web = await waitFor('status', () => (ipOf(e.svc('web')) ? e.svc('web') : undefined));
  const np = web.spec.ports[0].nodePort as number;
  assert.equal(web.spec.healthCheckNodePort, hcPort);
  const slice = (endpoints: Obj[]): Obj => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints,
  });
  const ep = (node: string, ready: boolean, n: number) => ({ addresses: [`10.244.${node.slice(1)}.${n}`], nodeName: node, conditions: { ready } });
  assert.equal((await e.call('POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', slice([ep('n1', true, 1), ep('n1', true, 2), ep('n2', true, 1)]))).status, 201);
  await waitFor('weights 2:1', () => sameJson(backendsOf(vsOf(ctl.services(), 'web')), [`127.0.0.2:${np}*2`, `127.0.0.3:${np}*1`]));
  // A pod on n2 stops being ready, one more starts on n1.
  await e.call('PUT', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-abc', slice([ep('n1', true, 1), ep('n1', true, 2), ep('n1', true, 3), ep('n2', false, 1)]));
  await waitFor('weights 3:1', () => sameJson(backendsOf(vsOf(ctl.services(), 'web')), [`127.0.0.2:${np}*3`, `127.0.0.3:${np}*1`]));
  const spec = vsOf(ctl.services(), 'web')!.ports[0]!;
  assert.deepEqual([spec.scheduler, spec.healthCheck.type, spec.healthCheck.port, spec.healthCheck.path], ['wrr', 'http', hcPort, '/healthz']);

  const changes: HealthChange[] = [];
  const checker = new HealthChecker({ log: silentLogger, onChange: (c) => changes.push(c) });
  t.after(() => checker.stop());
  const vs = vsOf(ctl.services(), 'web')!;
  const key = listenerKey(vs.vip, spec.port, spec.protocol);
  checker.sync(vs.ports.map((p) => ({ key: listenerKey(vs.vip, p.port, p.protocol), service: vs.name, vip: vs.vip, spec: p })));
  await waitFor('n2 down', () => changes.some((c) => !c.up));
  await waitFor('n1 checked twice', () => (checker.health(key, `127.0.0.2:${np}`)?.checks ?? 0) >= 2);
  assert.deepEqual(changes.map((c) => [c.backend, c.up, c.reason]), [[`127.0.0.3:${np}`, false, 'HTTP 503']]);
  assert.equal(checker.health(key, `127.0.0.2:${np}`)?.up, true);
});

test('KubeController converges on changes to one Service without touching another: ports added and removed, annotations, affinity, type changed away', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl, seen } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('other', { spec: { ports: twoPorts(80, 443) } }));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('a'));
  await waitFor('both served', () => ctl.services().length === 2 && ipOf(e.svc('a')) && ipOf(e.svc('other')));
  const other0 = structuredClone(vsOf(ctl.services(), 'other')!);
  const otherStatus = structuredClone(ingressOf(e.svc('other')));
  const from = seen.length;
  const vipA = vsOf(ctl.services(), 'a')!.vip;
  const a = () => vsOf(ctl.services(), 'a');

  await e.patchSvc('a', { spec: { ports: twoPorts(80, 8443) } });
  await waitFor('a port added', () => sameJson(portsOf(a()), ['80/TCP', '8443/TCP']));
  await e.patchSvc('a', { metadata: { annotations: { 'edgeport.io/scheduler': 'lc', 'edgeport.io/proxy-protocol': 'v2' } } });
  await waitFor('annotations applied', () => a()?.ports.every((p) => p.scheduler === 'lc' && p.proxyProtocol === 'v2'));
  await e.patchSvc('a', { spec: { ports: [{ name: 'p8443', port: 8443, protocol: 'TCP' }] } });
  await waitFor('a port removed', () => sameJson(portsOf(a()), ['8443/TCP']));
  await e.patchSvc('a', { metadata: { annotations: { 'edgeport.io/scheduler': null } }, spec: { sessionAffinity: 'ClientIP' } });
  await waitFor('ClientIP affinity: sh', () => a()?.ports.every((p) => p.scheduler === 'sh' && p.proxyProtocol === 'v2'));
  await e.patchSvc('a', { metadata: { annotations: { 'edgeport.io/proxy-protocol': 'none' } } });
  await waitFor('proxy protocol off', () => a()?.ports.every((p) => p.proxyProtocol === 'none'));
  assert.equal(a()?.vip, vipA, 'a keeps its address through every change');
  assert.equal(ipOf(e.svc('a')), vipA);

  await e.patchSvc('a', { spec: { type: 'ClusterIP' } });
  await waitFor('a gone', () => ctl.services().length === 1);
  await waitFor('a released', () => (e.svc('a')!.metadata.finalizers ?? []).length === 0 && sameJson(ingressOf(e.svc('a')), []));
  await waitFor('IPReleased', () => e.events('a').some((x) => x.includes('IPReleased')));

  // other: the same virtual service in every list handed over, the same status.
  assert.ok(seen.length - from >= 6, `one onChange per change (${seen.length - from})`);
  for (const list of seen.slice(from)) assert.deepEqual(vsOf(list, 'other'), other0);
  assert.deepEqual(ingressOf(e.svc('other')), otherStatus);
  assert.deepEqual(e.events('other'), [`Normal IPAllocated: Assigned IP ${other0.vip} from pool default`]);
});

test('KubeController follows a class change: a Service moved to another class is released, one moved to ours is served', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('mine'));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('theirs', { spec: { loadBalancerClass: 'example.com/other' } }));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('bystander'));
  await waitFor('mine and bystander served', () => ctl.services().length === 2 && ipOf(e.svc('mine')) && ipOf(e.svc('bystander')));
  const by0 = structuredClone(vsOf(ctl.services(), 'bystander'));
  // The class may not change while the type is LoadBalancer (the API server refuses): through ClusterIP.
  assert.equal((await e.patchSvc('mine', { spec: { loadBalancerClass: 'example.com/other' } })).status, 422);
  for (const [name, cls] of [
    ['mine', 'example.com/other'],
    ['theirs', 'edgeport.io/lb'],
  ] as const) {
    assert.equal((await e.patchSvc(name, { spec: { type: 'ClusterIP', loadBalancerClass: null } })).status, 200);
    assert.equal((await e.patchSvc(name, { spec: { type: 'LoadBalancer', loadBalancerClass: cls } })).status, 200);
  }
  await waitFor('theirs served', () => vsOf(ctl.services(), 'theirs') && ipOf(e.svc('theirs')));
  await waitFor('mine released', () => !vsOf(ctl.services(), 'mine') && (e.svc('mine')!.metadata.finalizers ?? []).length === 0);
  assert.equal(ipOf(e.svc('mine')), undefined);
  assert.deepEqual(e.events('theirs'), [`Normal IPAllocated: Assigned IP ${ipOf(e.svc('theirs'))} from pool default`]);
  assert.deepEqual(vsOf(ctl.services(), 'bystander'), by0);
});

test('KubeController.updateConfig applies a reload: defaults, node health check, address type, then class and claimUnclassed', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl, cfg } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('classy', { spec: { loadBalancerClass: 'example.com/other' } }));
  await waitFor('web served', () => vsOf(ctl.services(), 'web') && ipOf(e.svc('web')));
  const np = e.svc('web')!.spec.ports[0].nodePort as number;
  assert.deepEqual(vsOf(ctl.services(), 'web')!.ports[0]!.scheduler, 'rr');

  ctl.updateConfig({
    kubernetes: { ...cfg.kubernetes, nodeAddressType: 'ExternalIP', nodeHealthCheck: { type: 'http', port: 10999, path: '/livez' } },
    defaults: { ...cfg.defaults, scheduler: 'lc', retries: 1 },
  });
  await waitFor('the new settings', () => vsOf(ctl.services(), 'web')?.ports[0]?.scheduler === 'lc');
  const p = vsOf(ctl.services(), 'web')!.ports[0]!;
  assert.deepEqual([p.retries, p.healthCheck.port, p.healthCheck.path, backendsOf(vsOf(ctl.services(), 'web'))], [1, 10999, '/livez', [`192.0.2.2:${np}*1`, `192.0.2.3:${np}*1`]]);
  assert.equal(vsOf(ctl.services(), 'web')!.vip, '10.200.0.10');

  ctl.updateConfig({ kubernetes: { ...cfg.kubernetes, loadBalancerClass: 'example.com/other', claimUnclassed: false }, defaults: cfg.defaults });
  await waitFor('classy served, web not', () => sameJson(ctl.services().map((s) => s.name), ['k8s/default/classy']));
  await waitFor('web released', () => (e.svc('web')!.metadata.finalizers ?? []).length === 0 && sameJson(ingressOf(e.svc('web')), []));
  await waitFor('IPReleased', () => e.events('web').some((x) => x.includes('IPReleased')));
  await waitFor('classy status', () => ipOf(e.svc('classy')));
  assert.deepEqual(e.svc('classy')!.metadata.finalizers, [FINALIZER]);
});

test('KubeController never moves a Service off the address in its status: a clash gets AllocationFailed, then the address once it is free', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  // Both claim 10.200.0.12 in status (copied manifests, or another controller wrote them).
  for (const name of ['a-old', 'b-new']) {
    await e.call('POST', '/api/v1/namespaces/default/services', lbService(name));
    assert.equal((await e.patchSvc(name, { status: { loadBalancer: { ingress: [{ ip: '10.200.0.12', ipMode: 'Proxy' }] } } }, 'status')).status, 200);
  }
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('c'));
  const { ctl } = await e.start();
  await waitFor('AllocationFailed for b-new', () => e.events('b-new').length > 0);
  assert.deepEqual(e.events('b-new'), [
    'Warning AllocationFailed: Cannot assign "10.200.0.12" to "k8s/default/b-new": it is in use by "k8s/default/a-old" (no sharing key was given); the Service waits for the address in its status (addresses never move on their own)',
  ]);
  await waitFor('c served', () => ipOf(e.svc('c')));
  assert.deepEqual(ctl.services().map((s) => `${s.name} ${s.vip}`), ['k8s/default/a-old 10.200.0.12', 'k8s/default/c 10.200.0.10']);

  // It keeps trying, without a new address and without a second Event for the same failure.
  const gen = ctl.generation;
  await e.patchNode('n1', { metadata: { labels: { touched: 'yes' } } });
  await reconciled(ctl, gen);
  assert.deepEqual(ingressOf(e.svc('b-new')), [{ ip: '10.200.0.12', ipMode: 'Proxy' }]);
  assert.equal(vsOf(ctl.services(), 'b-new'), undefined);
  assert.equal(e.events('b-new').length, 1);

  await e.call('DELETE', '/api/v1/namespaces/default/services/a-old');
  await waitFor('b-new served on its address', () => vsOf(ctl.services(), 'b-new')?.vip === '10.200.0.12');
  await waitFor('IPAllocated', () => e.events('b-new').length === 2);
  assert.equal(e.events('b-new')[1], 'Normal IPAllocated: Assigned IP 10.200.0.12, the address in its status');
  assert.deepEqual(ingressOf(e.svc('b-new')), [{ ip: '10.200.0.12', ipMode: 'Proxy' }]);
});

test('KubeController retries a 409 Conflict from a stale resourceVersion (finalizer added and removed) and converges', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const bumped = new Set<string>();
  // Someone else writes the Service just before the first finalizer patch that adds and the
  // first that removes: the controller's view is stale and the API server answers 409.
  const { ctl } = await e.start({
    wrap: (real) => ({
      ...real,
      async patchFinalizers(ns, name, fins, rv) {
        const what = fins.includes(FINALIZER) ? 'add' : 'remove';
        if (!bumped.has(what)) {
          bumped.add(what);
          await e.patchSvc(name, { metadata: { annotations: { [`example.com/touch-${what}`]: 'x' } } });
        }
        return real.patchFinalizers(ns, name, fins, rv);
      },
    }),
  });
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await waitFor('the status', () => ipOf(e.svc('web')));
  assert.deepEqual(e.svc('web')!.metadata.finalizers, [FINALIZER]);
  await waitFor('served', () => vsOf(ctl.services(), 'web'));
  // A failed status write with nothing else changing: only the controller's own retry fixes it.
  e.api.failNext({ method: 'PATCH', path: '/api/v1/namespaces/default/services/web/status', code: 409 });
  ctl.setPortErrors(new Map([['k8s/default/web', [{ port: 80, protocol: 'TCP', error: 'edgeport.io/BindFailed' }]]]));
  await waitFor('the status retried', () => (ingressOf(e.svc('web')) as Obj[])[0]?.ports);

  await e.call('DELETE', '/api/v1/namespaces/default/services/web');
  await waitFor('the object gone', () => e.svc('web') === undefined);
  const patches = e.api.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith('/api/v1/namespaces/default/services/web') && !r.body.includes('touch-'));
  const codes = patches.map((r) => `${r.path.endsWith('/status') ? 'status' : r.body.includes('"finalizers":[]') ? 'remove' : 'add'} ${r.status}`);
  assert.deepEqual(codes, ['add 409', 'add 200', 'status 200', 'status 409', 'status 200', 'remove 409', 'remove 200']);
  assert.ok(patches.filter((r) => !r.path.endsWith('/status')).every((r) => r.body.includes('"resourceVersion"')), 'finalizer patches carry the resourceVersion');
  assert.deepEqual([...bumped], ['add', 'remove']);
  assert.deepEqual(ctl.services(), []);
});

test('KubeController through an API server outage: keeps serving what it had, never hands over an empty list, converges once it is back', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl, seen } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('api', { spec: { ports: [{ name: 'grpc', port: 9000, protocol: 'TCP' }] } }));
  await waitFor('both served', () => ctl.services().length === 2 && ipOf(e.svc('api')));
  const before = structuredClone(ctl.services());
  const from = seen.length;

  await e.api.stop();
  const failedAt = e.api.requests.length;
  await new Promise((r) => setTimeout(r, 2500)); // the outage
  assert.equal(seen.length, from, 'nothing handed over while the API server is away');
  assert.deepEqual(ctl.services(), before);
  await e.api.start();
  await waitFor('the watches back', () => e.api.openWatches === 3, 10_000);
  assert.ok(e.api.requests.length > failedAt);

  await e.call('POST', '/api/v1/namespaces/default/services', lbService('after'));
  await e.call('DELETE', '/api/v1/namespaces/default/services/api');
  await waitFor('converged', () => sameJson(ctl.services().map((s) => s.name), ['k8s/default/after', 'k8s/default/web']) && ipOf(e.svc('after')));
  await waitFor('api gone', () => e.svc('api') === undefined);
  assert.equal(vsOf(ctl.services(), 'after')?.vip, ipOf(e.svc('after')));
  for (const list of seen.slice(from)) assert.deepEqual(vsOf(list, 'web'), vsOf(before, 'web'), 'web unchanged in every list');
});

test('KubeController relists after 410 Gone (history compacted while it was away) and sees what changed meanwhile', { timeout: 15_000 }, async (t) => {
  const e = await setup(t);
  const { ctl } = await e.start();
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await waitFor('served', () => vsOf(ctl.services(), 'web') && ipOf(e.svc('web')));
  const np = e.svc('web')!.spec.ports[0].nodePort as number;

  // While the controller cannot watch: a Service appears, n2 goes NotReady; then the history
  // is compacted, so resuming from the last resourceVersion it saw gets 410 Gone.
  await e.api.stop();
  e.api.objects.put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'during', namespace: 'default' },
    spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 8080, protocol: 'TCP', nodePort: 31080 }] },
  });
  e.api.objects.put({ ...nodeObj('n2', '127.0.0.3'), status: { conditions: [{ type: 'Ready', status: 'False' }], addresses: [{ type: 'InternalIP', address: '127.0.0.3' }] } });
  e.api.compact();
  const mark = e.api.requests.length;
  await e.api.start();

  await waitFor('during served', () => vsOf(ctl.services(), 'during') && ipOf(e.svc('during')), 10_000);
  assert.deepEqual(backendsOf(vsOf(ctl.services(), 'during')), ['127.0.0.2:31080*1']);
  assert.deepEqual(backendsOf(vsOf(ctl.services(), 'web')), [`127.0.0.2:${np}*1`]);
  assert.equal(vsOf(ctl.services(), 'web')?.vip, '10.200.0.10');
  const after = e.api.requests.slice(mark);
  for (const path of ['/api/v1/services', '/api/v1/nodes']) {
    assert.ok(after.some((r) => r.path === path && r.query.includes('watch=true')), `a watch of ${path} resumed`);
    assert.ok(after.some((r) => r.path === path && !r.query.includes('watch=true')), `${path} listed again after 410`);
  }
});

test('HA: a controller that is not the leader writes nothing and serves the address the leader wrote; leadership moves by leaderChanged()', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  let aLeads = false;
  const a = await e.start({ isLeader: () => aLeads });
  await e.call('POST', '/api/v1/namespaces/default/services', lbService('web'));
  await new Promise((r) => setTimeout(r, 500));
  const writes = () => e.api.requests.filter((r) => r.method !== 'GET').length;
  assert.equal(writes(), 1, 'only the test\'s own POST: no finalizer, status or Event from a follower');
  assert.equal(e.svc('web')!.metadata.finalizers, undefined);
  assert.deepEqual(a.seen.at(-1) ?? [], [], 'nothing to serve without an address in status');
  // Another appliance leads: it allocates and writes status; the follower serves that address.
  const b = await e.start({ isLeader: () => true });
  const ip = await waitFor('the status', () => (ingressOf(e.svc('web')) as { ip: string }[] | undefined)?.[0]?.ip);
  await waitFor('the follower serves the status address', () => a.seen.at(-1)?.[0]?.vip === ip);
  assert.equal(b.seen.at(-1)?.[0]?.vip, ip);
  const before = writes();
  // The leader goes; the follower takes over and keeps the address, writing nothing new.
  await b.ctl.stop();
  aLeads = true;
  a.ctl.leaderChanged();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(writes(), before, 'status and finalizer already right: nothing to write');
  assert.equal(a.seen.at(-1)?.[0]?.vip, ip);
  // As leader it now handles deletion: releases, removes the finalizer.
  await e.call('DELETE', '/api/v1/namespaces/default/services/web');
  await waitFor('the object gone', () => e.svc('web') === undefined);
  assert.deepEqual(a.seen.at(-1), []);
});
