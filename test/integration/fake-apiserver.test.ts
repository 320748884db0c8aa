// The fake API server (test/support/fake-apiserver.ts) proved faithful with the real kubectl
// (/usr/bin/kubectl: Google Cloud SDK's kubectl dispatcher, which runs kubectl v1.32.4 for a
// v1.32 server) and the real @kubernetes/client-node 2.0.1.
//
// What kubectl asked for, and how the fake answers (seen in FakeApiServer.requests):
// - every command: GET /version first (the dispatcher, "kubectl-dispatcher/v1.0", picks the
//   kubectl minor version from it): answered v1.32.4.
// - discovery: GET /api and /apis with Accept application/json;g=apidiscovery.k8s.io;v=v2;
//   as=APIGroupDiscoveryList,...;v=v2beta1...,application/json. The fake answers plain
//   APIVersions / APIGroupList (Content-Type application/json) and kubectl falls back to the
//   legacy discovery: GET /api/v1, /apis/coordination.k8s.io/v1, /apis/discovery.k8s.io/v1,
//   /apis/events.k8s.io/v1 (APIResourceList each). Cached per server in --cache-dir.
// - kubectl get: GET .../services?limit=500 with Accept application/json;as=Table;v=v1;
//   g=meta.k8s.io,...: a meta.k8s.io/v1 Table (columns as upstream's printers: NAME, TYPE,
//   CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE, SELECTOR at priority 1), rows carrying
//   PartialObjectMetadata. -o yaml asks application/json and gets the object.
// - kubectl get -w: the Table list, then GET ...?resourceVersion=N&watch=true (Table
//   Accept): each event's object is a one-row Table (column definitions on the first only).
// - kubectl apply: GET /openapi/v3 and /openapi/v3/api/v1?hash=... first. With a 404 there
//   (and on /openapi/v2, asked as protobuf) kubectl refuses: "error validating data: failed to
//   download openapi". The fake serves a minimal OpenAPI v3 per group version whose PATCH
//   operations list the fieldValidation query parameter: kubectl then relies on server-side
//   validation and sends POST ...?fieldManager=kubectl-client-side-apply&fieldValidation=Strict
//   (GET 404 first), and on re-apply PATCH with application/strategic-merge-patch+json,
//   including $setElementOrder/ports and {$patch: delete, port: N} list directives. No
//   OpenAPI schema is needed: kubectl computes the patch from its compiled-in types.
// - kubectl describe svc: GET the service (Accept protobuf,json: answered JSON), GET
//   /apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=
//   kubernetes.io/service-name=X, GET /api/v1/namespaces/default/events?fieldSelector=
//   involvedObject.namespace=default,involvedObject.kind=Service,involvedObject.uid=U,
//   involvedObject.name=X&limit=500 (core v1 events, not events.k8s.io).
// - kubectl delete: DELETE with body {"propagationPolicy":"Background"}; with --wait (the
//   default) then GET the object, list ?fieldSelector=metadata.name=X&resourceVersion=0, and
//   watch ?allowWatchBookmarks=true&fieldSelector=metadata.name=X&resourceVersion=N&
//   timeoutSeconds=~500 until DELETED.
//
// client-node 2.0.1 facts the tests pin (and Edgeport must live with): it refuses an http://
// server unless the kubeconfig says insecure-skip-tls-verify (writeKubeconfig does); its
// patch calls send application/json-patch+json unless told otherwise (setHeaderOptions
// ('Content-Type', PatchStrategy.MergePatch)); a MicroTime field must be a V1MicroTime (a
// plain Date serializes with milliseconds and the server rejects it) and reads back as a
// string; an informer stops on a watch socket reset (its 'error' handlers run, it does not
// retry), and informer.stop() itself also fires 'error' with an AbortError.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { FakeApiServer, formatMicroTime, type Obj } from '../support/fake-apiserver.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { waitFor } from '../support/wait.ts';

const KUBECTL = '/usr/bin/kubectl';
const noKubectl = existsSync(KUBECTL) ? false : `${KUBECTL} is not installed`;

interface Env {
  api: FakeApiServer;
  url: string;
  dir: string;
  kubeconfig: string;
  /** Run kubectl to completion. */
  kubectl(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Start kubectl and keep it running; output() is what it printed so far. */
  spawnKubectl(...args: string[]): { child: ChildProcess; output(): string; exited: Promise<number | null> };
  /** An HTTP request to the fake with a JSON body. */
  call(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: Obj }>;
}

async function setup(t: TestContext): Promise<Env> {
  const api = new FakeApiServer();
  const url = await api.start();
  const dir = mkdtempSync(join(tmpdir(), 'edgeport-fakeapi-'));
  const kubeconfig = writeKubeconfig(url, { dir });
  const children = new Set<ChildProcess>();
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const base = ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache')];
  const env = { ...process.env, KUBECONFIG: '' };
  const spawnKubectl = (...args: string[]) => {
    const child = spawn(KUBECTL, [...base, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, output: () => out, exited };
  };
  const kubectl = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(KUBECTL, [...base, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(url + path, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Obj };
  };
  return { api, url, dir, kubeconfig, kubectl, spawnKubectl, call };
}


async function within<T>(what: string, p: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw watch: newline-delimited JSON events collected as they arrive. */
function rawWatch(url: string): { events: Obj[]; ended: Promise<void>; close(): void } {
  const events: Obj[] = [];
  let req!: http.ClientRequest;
  const ended = new Promise<void>((resolve) => {
    req = http.get(url, (res) => {
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)) as Obj);
          buf = buf.slice(i + 1);
        }
      });
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
  });
  return { events, ended, close: () => req.destroy() };
}

const SERVICE_YAML = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: 30080
  - name: https
    port: 443
`;

const INGRESS = { status: { loadBalancer: { ingress: [{ ip: '192.0.2.10', ipMode: 'Proxy' }] } } };

test('kubectl apply creates a LoadBalancer Service that kubectl get shows <pending>, then with the status IP', { skip: noKubectl, timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const file = join(e.dir, 'svc.yaml');
  writeFileSync(file, SERVICE_YAML);
  const applied = await e.kubectl('apply', '-f', file);
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal(applied.stdout.trim(), 'service/web created');

  // Allocated like the real apiserver: a cluster IP in 10.96.0.0/12, the requested nodePort
  // kept, the other one and the health check node port allocated in 30000-32767.
  const svc = e.api.objects.get('services', 'web')!;
  assert.match(svc.spec.clusterIP, /^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$/);
  assert.deepEqual(svc.spec.clusterIPs, [svc.spec.clusterIP]);
  const [http80, https443] = svc.spec.ports as Obj[];
  assert.equal(http80!.nodePort, 30080);
  assert.ok(https443!.nodePort >= 30000 && https443!.nodePort <= 32767 && https443!.nodePort !== 30080);
  assert.ok(svc.spec.healthCheckNodePort >= 30000 && svc.spec.healthCheckNodePort <= 32767);
  assert.ok(![30080, https443!.nodePort].includes(svc.spec.healthCheckNodePort));
  assert.deepEqual(svc.status, { loadBalancer: {} });

  let got = await e.kubectl('get', 'svc', 'web');
  assert.equal(got.code, 0, got.stderr);
  const [header, row] = got.stdout.trim().split('\n');
  assert.match(header!, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$/);
  assert.match(row!, new RegExp(`^web\\s+LoadBalancer\\s+${svc.spec.clusterIP.replace(/\./g, '\\.')}\\s+<pending>\\s+80:30080/TCP,443:${https443!.nodePort}/TCP\\s+\\d+s$`));

  const patched = await e.call('PATCH', '/api/v1/namespaces/default/services/web/status', INGRESS, 'application/merge-patch+json');
  assert.equal(patched.status, 200);
  assert.deepEqual(patched.body.status.loadBalancer.ingress, [{ ip: '192.0.2.10', ipMode: 'Proxy' }]);
  got = await e.kubectl('get', 'svc', 'web');
  assert.match(got.stdout.trim().split('\n')[1]!, /^web\s+LoadBalancer\s+\S+\s+192\.0\.2\.10\s+80:30080\/TCP/);

  // Re-apply with a change: a strategic merge patch that keeps the status and the allocations.
  writeFileSync(file, SERVICE_YAML.replace('port: 443', 'port: 8443'));
  const again = await e.kubectl('apply', '-f', file);
  assert.equal(again.stdout.trim(), 'service/web configured', again.stderr);
  const after = e.api.objects.get('services', 'web')!;
  assert.deepEqual(after.spec.ports.map((p: Obj) => [p.name, p.port, p.nodePort]), [
    ['http', 80, 30080],
    ['https', 8443, https443!.nodePort],
  ]);
  assert.equal(after.status.loadBalancer.ingress[0].ip, '192.0.2.10');
  assert.equal(after.metadata.generation, 2);
  const unchanged = await e.kubectl('apply', '-f', file);
  assert.equal(unchanged.stdout.trim(), 'service/web unchanged');
  // A patch that changes nothing writes nothing (no new resourceVersion, no watch event).
  const rv = after.metadata.resourceVersion;
  const noop = await e.call('PATCH', '/api/v1/namespaces/default/services/web', { spec: { type: 'LoadBalancer' } }, 'application/merge-patch+json');
  assert.equal(noop.body.metadata.resourceVersion, rv);

  const writes = e.api.requests.filter((r) => r.method !== 'GET' && r.userAgent?.startsWith('kubectl/')).map((r) => `${r.method} ${r.path} ${r.contentType}`);
  assert.deepEqual(writes, [
    'POST /api/v1/namespaces/default/services application/json',
    'PATCH /api/v1/namespaces/default/services/web application/strategic-merge-patch+json',
  ]);
  const smp = JSON.parse(e.api.requests.find((r) => r.method === 'PATCH' && r.contentType === 'application/strategic-merge-patch+json')!.body);
  assert.deepEqual(smp.spec['$setElementOrder/ports'], [{ port: 80 }, { port: 8443 }]);
  assert.deepEqual(smp.spec.ports, [{ name: 'https', port: 8443 }, { $patch: 'delete', port: 443 }]);
  assert.ok(e.api.requests.some((r) => r.method === 'POST' && /fieldValidation=Strict/.test(r.query)));
});

test('kubectl get svc -w prints the row again when the status gets an IP', { skip: noKubectl, timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const created = await e.call('POST', '/api/v1/namespaces/default/services', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web' },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] },
  });
  assert.equal(created.status, 201);
  const w = e.spawnKubectl('get', 'svc', '-w');
  await waitFor('the <pending> row', () => /web\s+LoadBalancer\s+\S+\s+<pending>\s+80:30080\/TCP/.test(w.output()), 10_000);
  await e.api.waitForWatch((r) => r.path === '/api/v1/namespaces/default/services');
  await e.call('PATCH', '/api/v1/namespaces/default/services/web/status', INGRESS, 'application/merge-patch+json');
  await waitFor('the 192.0.2.10 row', () => /web\s+LoadBalancer\s+\S+\s+192\.0\.2\.10\s+80:30080\/TCP/.test(w.output()));
  w.child.kill('SIGTERM');
  await w.exited;
  const lines = w.output().trim().split('\n');
  assert.match(lines[0]!, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP/);
  assert.deepEqual(
    lines.slice(1).map((l) => l.split(/\s+/)[3]),
    ['<pending>', '192.0.2.10'],
    w.output(),
  );
  const watch = e.api.requests.find((r) => /watch=true/.test(r.query))!;
  assert.match(watch.accept!, /as=Table/);
});

test('kubectl describe svc shows the Events POSTed to core v1 events; eventTime must be a MicroTime', { skip: noKubectl, timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const svc = (await e.call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'web' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } })).body;
  const now = new Date();
  const event = (over: Obj = {}) => ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: 'web.', namespace: 'default' },
    involvedObject: { apiVersion: 'v1', kind: 'Service', name: 'web', namespace: 'default', uid: svc.metadata.uid, resourceVersion: svc.metadata.resourceVersion },
    reason: 'IPAllocated',
    message: 'Assigned IP "192.0.2.10" from pool "default"',
    type: 'Normal',
    source: { component: 'edgeport' },
    reportingComponent: 'edgeport.io/lb',
    reportingInstance: 'edge-1',
    action: 'Allocate',
    firstTimestamp: now.toISOString(),
    lastTimestamp: now.toISOString(),
    eventTime: formatMicroTime(now),
    count: 1,
    ...over,
  });
  const ok = await e.call('POST', '/api/v1/namespaces/default/events', event());
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  assert.match(ok.body.metadata.name, /^web\.[a-z0-9]{5}$/);
  assert.match(ok.body.eventTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.match(ok.body.firstTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'a Time is written back at whole seconds');

  // What the real server refuses: a millisecond eventTime (400, not a MicroTime), and an
  // eventTime without the fields a "new" event needs (422).
  const millis = await e.call('POST', '/api/v1/namespaces/default/events', event({ eventTime: now.toISOString() }));
  assert.equal(millis.status, 400);
  assert.match(millis.body.message, /^Event in version "v1" cannot be handled as a Event: parsing time ".*" as "2006-01-02T15:04:05.000000Z07:00"/);
  const bare = await e.call('POST', '/api/v1/namespaces/default/events', event({ action: undefined, reportingInstance: undefined }));
  assert.equal(bare.status, 422);
  assert.deepEqual(bare.body.details.causes.map((c: Obj) => c.field), ['reportingInstance', 'action']);
  const wrongNs = await e.call('POST', '/api/v1/namespaces/default/events', event({ eventTime: undefined, involvedObject: { kind: 'Service', name: 'web', namespace: 'other' } }));
  assert.equal(wrongNs.status, 422);
  assert.match(wrongNs.body.message, /involvedObject\.namespace: Invalid value: "other": does not match event\.namespace/);

  // An events.k8s.io/v1 Event is the same object seen through the other API.
  const v1 = await e.call('POST', '/apis/events.k8s.io/v1/namespaces/default/events', {
    metadata: { name: 'web.released' },
    regarding: { apiVersion: 'v1', kind: 'Service', name: 'web', namespace: 'default', uid: svc.metadata.uid },
    reason: 'IPReleased',
    note: 'Released IP "192.0.2.10"',
    type: 'Normal',
    reportingController: 'edgeport.io/lb',
    reportingInstance: 'edge-1',
    action: 'Release',
    eventTime: formatMicroTime(now),
  });
  assert.equal(v1.status, 201, JSON.stringify(v1.body));
  assert.equal(e.api.objects.get('events', 'web.released')!.message, 'Released IP "192.0.2.10"');

  const d = await e.kubectl('describe', 'svc', 'web');
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^Type:\s+LoadBalancer$/m);
  assert.match(d.stdout, /^Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message\n/m);
  assert.match(d.stdout, /Normal\s+IPAllocated\s+\d+s\s+edgeport\s+Assigned IP "192\.0\.2\.10" from pool "default"/);
  assert.match(d.stdout, /Normal\s+IPReleased\s+\d+s\s+edgeport\.io\/lb\s+Released IP "192\.0\.2\.10"/);
  const list = e.api.requests.find((r) => r.path === '/api/v1/namespaces/default/events' && r.method === 'GET')!;
  assert.match(decodeURIComponent(list.query), new RegExp(`involvedObject.uid=${svc.metadata.uid}`));
});

test('kubectl delete of a Service with a finalizer marks it, then waits until the finalizer is removed', { skip: noKubectl, timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  await e.call('POST', '/api/v1/namespaces/default/services', {
    metadata: { name: 'web', finalizers: ['edgeport.io/load-balancer'] },
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
  });
  const events = rawWatch(`${e.url}/api/v1/namespaces/default/services?watch=true&resourceVersion=${e.api.resourceVersion}`);
  t.after(() => events.close());

  const first = await e.kubectl('delete', 'svc', 'web', '--wait=false');
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout.trim(), 'service "web" deleted');
  let svc = e.api.objects.get('services', 'web')!;
  assert.match(svc.metadata.deletionTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(svc.metadata.finalizers, ['edgeport.io/load-balancer']);

  const waiting = e.spawnKubectl('delete', 'svc', 'web');
  await e.api.waitForWatch((r) => /fieldSelector=metadata.name%3Dweb/.test(r.query), 10_000);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(waiting.child.exitCode, null, 'kubectl delete --wait returned before the finalizer went');
  svc = e.api.objects.get('services', 'web')!;
  assert.ok(svc, 'the second delete must not remove an object with finalizers');

  const removed = await e.call('PATCH', '/api/v1/namespaces/default/services/web', { metadata: { finalizers: null } }, 'application/merge-patch+json');
  assert.equal(removed.status, 200);
  assert.equal(await within('kubectl delete to return', waiting.exited), 0, waiting.output());
  assert.equal(e.api.objects.get('services', 'web'), undefined);
  await waitFor('DELETED', () => events.events.some((ev) => ev.type === 'DELETED'));
  assert.deepEqual(
    events.events.map((ev) => [ev.type, Boolean(ev.object.metadata.deletionTimestamp), ev.object.metadata.finalizers ?? []]),
    [
      ['MODIFIED', true, ['edgeport.io/load-balancer']],
      ['MODIFIED', true, []],
      ['DELETED', true, []],
    ],
  );
  // Without finalizers a delete is immediate; the allocations are freed.
  const cluster = e.api.objects.list('services').length;
  assert.equal(cluster, 0);
});

test('PUT with a stale resourceVersion gets 409 Conflict; the main resource ignores status, /status ignores spec', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const path = '/api/v1/namespaces/default/services/web';
  const v1 = (await e.call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'web' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } })).body;
  const dup = await e.call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } });
  assert.equal(dup.status, 409);
  assert.deepEqual(dup.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'services "web" already exists',
    reason: 'AlreadyExists',
    details: { name: 'web', kind: 'services' },
    code: 409,
  });

  const v2 = await e.call('PUT', path, { ...v1, metadata: { ...v1.metadata, labels: { a: 'b' } }, status: INGRESS.status });
  assert.equal(v2.status, 200);
  assert.equal(v2.body.metadata.labels.a, 'b');
  assert.deepEqual(v2.body.status, { loadBalancer: {} }, 'the main resource ignores status');
  assert.ok(Number(v2.body.metadata.resourceVersion) > Number(v1.metadata.resourceVersion));
  assert.equal(v2.body.metadata.generation, 1, 'labels are not spec');

  const stale = await e.call('PUT', path, { ...v1, spec: { ...v1.spec, sessionAffinity: 'ClientIP' } });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.reason, 'Conflict');
  assert.equal(stale.body.message, 'Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again');
  assert.deepEqual(stale.body.details, { name: 'web', kind: 'services' });

  const st = await e.call('PUT', `${path}/status`, { ...v2.body, spec: { ...v2.body.spec, type: 'ClusterIP' }, status: INGRESS.status });
  assert.equal(st.status, 200);
  assert.equal(st.body.spec.type, 'LoadBalancer', '/status ignores spec');
  assert.equal(st.body.status.loadBalancer.ingress[0].ip, '192.0.2.10');

  const badMode = await e.call('PATCH', `${path}/status`, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.10', ipMode: 'Direct' }] } } }, 'application/merge-patch+json');
  assert.equal(badMode.status, 422);
  assert.match(badMode.body.message, /status\.loadBalancer\.ingress\[0\]\.ipMode: Unsupported value: "Direct"/);

  const missing = await e.call('GET', '/api/v1/namespaces/default/services/nope');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body.details, { name: 'nope', kind: 'services' });
  const lease = await e.call('GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/nope');
  assert.equal(lease.body.message, 'leases.coordination.k8s.io "nope" not found');
  const noNs = await e.call('POST', '/apis/coordination.k8s.io/v1/namespaces/edgeport-system/leases', { metadata: { name: 'l' }, spec: {} });
  assert.equal(noNs.status, 404);
  assert.equal(noNs.body.message, 'namespaces "edgeport-system" not found');

  const ssa = await e.call('PATCH', path, {}, 'application/apply-patch+yaml');
  assert.equal(ssa.status, 415);
  const jsonPatchBody = await e.call('PATCH', path, { metadata: { labels: { c: 'd' } } }, 'application/json-patch+json');
  assert.equal(jsonPatchBody.status, 400);
  assert.equal(jsonPatchBody.body.message, 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  const jp = await e.call('PATCH', path, [{ op: 'add', path: '/metadata/labels/c', value: 'd' }], 'application/json-patch+json');
  assert.equal(jp.status, 200);
  assert.deepEqual(jp.body.metadata.labels, { a: 'b', c: 'd' });

  const taken = await e.call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'other' }, spec: { type: 'NodePort', ports: [{ port: 80, nodePort: st.body.spec.ports[0].nodePort }] } });
  assert.equal(taken.status, 422);
  assert.match(taken.body.message, /spec\.ports\[0\]\.nodePort: Invalid value: \d+: provided port is already allocated/);
});

test('watch replays from a resourceVersion, filters by selector, and answers 410 Expired after compact()', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const base = `${e.url}/api/v1/namespaces/default/services`;
  const a = (await e.call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'a', labels: { app: 'x' } }, spec: { ports: [{ port: 80 }] } })).body;
  await e.call('POST', '/api/v1/namespaces/default/services', { metadata: { name: 'b' }, spec: { ports: [{ port: 80 }] } });
  await e.call('PATCH', '/api/v1/namespaces/default/services/a', { metadata: { labels: { app: 'y' } } }, 'application/merge-patch+json');

  const all = rawWatch(`${base}?watch=1&resourceVersion=${a.metadata.resourceVersion}`);
  const selected = rawWatch(`${base}?watch=true&resourceVersion=${Number(a.metadata.resourceVersion) - 1}&labelSelector=app%3Dx`);
  const initial = rawWatch(`${base}?watch=true&resourceVersion=0&fieldSelector=metadata.name%3Da&allowWatchBookmarks=true`);
  t.after(() => [all, selected, initial].forEach((w) => w.close()));
  await waitFor('replay', () => all.events.length === 2 && selected.events.length === 2 && initial.events.length === 1);
  assert.deepEqual(all.events.map((ev) => `${ev.type} ${ev.object.metadata.name}`), ['ADDED b', 'MODIFIED a']);
  // Leaving the selector is a DELETED for that watch, as the real watch cache does.
  assert.deepEqual(selected.events.map((ev) => `${ev.type} ${ev.object.metadata.name}`), ['ADDED a', 'DELETED a']);
  assert.deepEqual(initial.events.map((ev) => `${ev.type} ${ev.object.metadata.name}`), ['ADDED a']);
  await waitFor('a bookmark', () => initial.events.find((ev) => ev.type === 'BOOKMARK'), 3000);
  assert.deepEqual(Object.keys(initial.events.find((ev) => ev.type === 'BOOKMARK')!.object.metadata), ['resourceVersion']);

  const old = a.metadata.resourceVersion;
  e.api.compact();
  const gone = rawWatch(`${base}?watch=true&resourceVersion=${old}`);
  await within('the end of the expired watch', gone.ended);
  assert.deepEqual(gone.events, [
    {
      type: 'ERROR',
      object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${old} (${e.api.resourceVersion})`, reason: 'Expired', code: 410 },
    },
  ]);
  // The current resourceVersion still works, and sees new changes.
  const fresh = rawWatch(`${base}?watch=true&resourceVersion=${e.api.resourceVersion}`);
  t.after(() => fresh.close());
  await e.api.waitForWatch();
  await e.call('DELETE', '/api/v1/namespaces/default/services/b');
  await waitFor('DELETED b', () => fresh.events.find((ev) => ev.type === 'DELETED' && ev.object.metadata.name === 'b'));
});

test('client-node informer lists and watches, reports an error on dropWatches(), and catches up on start()', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(e.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const svc = (name: string): k8s.V1Service => ({ metadata: { name }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } });
  await core.createNamespacedService({ namespace: 'default', body: svc('a') });

  const seen: string[] = [];
  const errors: unknown[] = [];
  const informer = k8s.makeInformer(kc, '/api/v1/namespaces/default/services', () => core.listNamespacedService({ namespace: 'default' }));
  informer.on('add', (o) => seen.push(`add ${o.metadata!.name}`));
  informer.on('update', (o) => seen.push(`update ${o.metadata!.name} ${o.status?.loadBalancer?.ingress?.[0]?.ip ?? ''}`));
  informer.on('delete', (o) => seen.push(`delete ${o.metadata!.name}`));
  informer.on('error', (err) => errors.push(err));
  t.after(() => informer.stop());
  await informer.start();
  assert.deepEqual(seen, ['add a']);
  await e.api.waitForWatch();

  await core.createNamespacedService({ namespace: 'default', body: svc('b') });
  // client-node patches as application/json-patch+json unless told: a merge body is refused.
  await assert.rejects(core.patchNamespacedServiceStatus({ namespace: 'default', name: 'a', body: INGRESS }), (err: k8s.ApiException<string>) => err.code === 400);
  await core.patchNamespacedServiceStatus({ namespace: 'default', name: 'a', body: INGRESS }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  await core.deleteNamespacedService({ namespace: 'default', name: 'b' });
  await waitFor('watch events', () => seen.length === 4);
  assert.deepEqual(seen, ['add a', 'add b', 'update a 192.0.2.10', 'delete b']);
  assert.deepEqual(
    e.api.requests.filter((r) => r.method === 'PATCH').map((r) => [r.contentType, r.status]),
    [
      ['application/json-patch+json', 400],
      ['application/merge-patch+json', 200],
    ],
  );

  // A reset watch socket: the informer reports it and stops (no retry of its own).
  assert.equal(e.api.dropWatches(), 1);
  await waitFor('the informer error', () => errors.length === 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(e.api.openWatches, 0, 'the informer does not reconnect by itself');
  await core.createNamespacedService({ namespace: 'default', body: svc('c') });
  await core.deleteNamespacedService({ namespace: 'default', name: 'a' });
  assert.deepEqual(seen.slice(4), []);

  // start() again resumes the watch from the last resourceVersion: the missed changes arrive.
  const lists = e.api.requests.filter((r) => r.method === 'GET' && !/watch/.test(r.query)).length;
  await informer.start();
  await waitFor('catch-up', () => seen.length === 6);
  assert.deepEqual(seen.slice(4), ['add c', 'delete a']);
  assert.equal(e.api.requests.filter((r) => r.method === 'GET' && !/watch/.test(r.query)).length, lists, 'resumed without a re-list');

  // After compact() the resume gets 410: the informer re-lists by itself and stays in sync.
  await e.api.waitForWatch();
  e.api.dropWatches();
  await waitFor('the second informer error', () => errors.length === 2);
  await core.createNamespacedService({ namespace: 'default', body: svc('d') });
  e.api.compact();
  await informer.start();
  await waitFor('re-list after 410', () => seen.includes('add d'));
  assert.deepEqual(informer.list().map((o) => o.metadata!.name).sort(), ['c', 'd']);
  assert.ok(e.api.requests.filter((r) => r.method === 'GET' && !/watch/.test(r.query)).length > lists, 'a 410 makes the informer re-list');
});

test('client-node CoordinationV1Api round-trips a Lease whose renewTime is a V1MicroTime', { timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(e.kubeconfig);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'edgeport-system' } } });
  const coord = kc.makeApiClient(k8s.CoordinationV1Api);
  const t0 = new k8s.V1MicroTime('2026-01-02T03:04:05.678Z');
  const created = await coord.createNamespacedLease({
    namespace: 'edgeport-system',
    body: { metadata: { name: 'edgeport-vip-192-0-2-10' }, spec: { holderIdentity: 'edge-1', leaseDurationSeconds: 2, acquireTime: t0, renewTime: t0 } },
  });
  // Sent as 2026-01-02T03:04:05.678000Z; read back as that string, not a Date.
  assert.equal(created.spec!.renewTime as unknown, '2026-01-02T03:04:05.678000Z');
  assert.equal(e.api.objects.get('leases', 'edgeport-vip-192-0-2-10', 'edgeport-system')!.spec.renewTime, '2026-01-02T03:04:05.678000Z');

  const t1 = new k8s.V1MicroTime('2026-01-02T03:04:06.001Z');
  const renewed = await coord.replaceNamespacedLease({
    namespace: 'edgeport-system',
    name: 'edgeport-vip-192-0-2-10',
    body: { ...created, spec: { ...created.spec, renewTime: t1 } },
  });
  assert.equal(renewed.spec!.renewTime as unknown, '2026-01-02T03:04:06.001000Z');
  assert.ok(Number(renewed.metadata!.resourceVersion) > Number(created.metadata!.resourceVersion));
  // The same body again: stale resourceVersion.
  await assert.rejects(
    coord.replaceNamespacedLease({ namespace: 'edgeport-system', name: 'edgeport-vip-192-0-2-10', body: { ...created, spec: { ...created.spec, holderIdentity: 'edge-2' } } }),
    (err: k8s.ApiException<string>) => err.code === 409 && JSON.parse(err.body).reason === 'Conflict',
  );
  // A plain Date is serialized with milliseconds, which is not a MicroTime: 400, as upstream.
  await assert.rejects(
    coord.createNamespacedLease({ namespace: 'edgeport-system', body: { metadata: { name: 'plain-date' }, spec: { renewTime: new Date() as k8s.V1MicroTime } } }),
    (err: k8s.ApiException<string>) => err.code === 400 && /cannot parse "\.\d{3}Z" as "\.000000"/.test(JSON.parse(err.body).message),
  );
});

test('stop() and start() keep the port and the objects; failNext() answers a Status', { skip: noKubectl, timeout: 20_000 }, async (t) => {
  const e = await setup(t);
  e.api.objects.put({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'node-1' },
    status: { conditions: [{ type: 'Ready', status: 'True' }], addresses: [{ type: 'InternalIP', address: '10.0.0.11' }], nodeInfo: { kubeletVersion: 'v1.32.4' } },
  });
  const watch = rawWatch(`${e.url}/api/v1/nodes?watch=true`);
  await waitFor('ADDED node-1', () => watch.events.length === 1);
  await e.api.stop();
  await within('the end of the watch', watch.ended);
  await assert.rejects(fetch(`${e.url}/api/v1/nodes`));
  const url = await e.api.start();
  assert.equal(url, e.url);
  const got = await e.kubectl('get', 'nodes', '-o', 'wide');
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stdout, /^node-1\s+Ready\s+<none>\s+\d+s\s+v1\.32\.4\s+10\.0\.0\.11\s+<none>$/m);

  e.api.failNext({ method: 'GET', path: '/api/v1/nodes/node-1', code: 503 });
  const failed = await e.call('GET', '/api/v1/nodes/node-1');
  assert.equal(failed.status, 503);
  assert.equal(failed.body.kind, 'Status');
  assert.equal((await e.call('GET', '/api/v1/nodes/node-1')).status, 200);
});
