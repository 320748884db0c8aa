// KubeController (lb/k8s/controller.ts) with the real client-node informers (lb/k8s/client.ts)
// against the fake API server: addresses, status, finalizers, Events, restart stability and
// watch recovery, as a user sees them through the API.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { builtinDefaults } from '../../lb/config/parse.ts';
import { createLogger, silentLogger } from '../../lb/core/log.ts';
import type { KubernetesSpec, PoolSpec } from '../../lb/core/types.ts';
import { Allocator } from '../../lb/ipam/allocator.ts';
import { createKubeApi, makeKubeConfig } from '../../lb/k8s/client.ts';
import { KubeController, type K8sVirtualService } from '../../lb/k8s/controller.ts';
import { FINALIZER } from '../../lb/k8s/convert.ts';
import { FakeApiServer, type Obj } from '../support/fake-apiserver.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';

const POOLS: PoolSpec[] = [{ name: 'default', addresses: ['10.200.0.10-10.200.0.20'], autoAssign: true, avoidBuggyIPs: false }];
const KUBE: KubernetesSpec = {
  enabled: true,
  nodeHealthCheck: { type: 'http', port: 10256, path: '/healthz' },
  kubeconfig: null,
  loadBalancerClass: 'edgeport.io/lb',
  claimUnclassed: true,
  nodeAddressType: 'InternalIP',
};

async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Env {
  api: FakeApiServer;
  kubeconfig: string;
  call(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: Obj }>;
  svc(name: string): Obj | undefined;
  events(name: string): string[];
  start(): Promise<{ ctl: KubeController; seen: K8sVirtualService[][]; at: number[] }>;
  /** at[i]: how many requests the fake had received when seen[i] was handed over. */
}

async function setup(t: TestContext): Promise<Env> {
  const api = new FakeApiServer();
  const url = await api.start();
  const kubeconfig = writeKubeconfig(url);
  t.after(() => api.stop());
  for (const [name, ip] of [
    ['n1', '127.0.0.2'],
    ['n2', '127.0.0.3'],
  ] as const) {
    api.objects.put({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name },
      status: { conditions: [{ type: 'Ready', status: 'True' }], addresses: [{ type: 'InternalIP', address: ip }] },
    });
  }
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(url + path, { method, headers: { 'content-type': contentType }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as Obj };
  };
  return {
    api,
    kubeconfig,
    call,
    svc: (name) => api.objects.get('services', name, 'default'),
    events: (name) =>
      api.objects
        .list('events', 'default')
        .filter((e) => e.involvedObject?.name === name)
        .map((e) => `${e.type} ${e.reason}: ${e.message}`),
    async start() {
      const seen: K8sVirtualService[][] = [];
      const at: number[] = [];
      const ctl = new KubeController({
        api: createKubeApi({ kc: makeKubeConfig(kubeconfig), instance: 'node-a' }),
        cfg: { kubernetes: KUBE, defaults: builtinDefaults() },
        allocator: new Allocator(POOLS),
        log: process.env.K8S_DEBUG ? createLogger({ level: "debug" }) : silentLogger,
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
      return { ctl, seen, at };
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
