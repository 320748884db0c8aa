import assert from 'node:assert/strict';
import { test } from 'node:test';
import { builtinDefaults } from '../../lb/config/parse.ts';
import type { PortSpec } from '../../lb/core/types.ts';
import { eligibleNodes, isOurs, localEndpoints, requestedIPs, servicePorts, serviceSettings, type KNode, type KService } from '../../lb/k8s/convert.ts';

const k8s = { loadBalancerClass: 'edgeport.io/lb', claimUnclassed: true };
const svc = (spec: KService['spec'], annotations: Record<string, string> = {}): KService => ({ metadata: { name: 's', namespace: 'default', annotations }, spec });

for (const row of [
  { desc: 'isOurs takes a LoadBalancer with our class', spec: { type: 'LoadBalancer', loadBalancerClass: 'edgeport.io/lb' }, cfg: k8s, want: true },
  { desc: 'isOurs takes an unclassed LoadBalancer when claimUnclassed', spec: { type: 'LoadBalancer' }, cfg: k8s, want: true },
  { desc: 'isOurs leaves an unclassed LoadBalancer when claimUnclassed is false', spec: { type: 'LoadBalancer' }, cfg: { ...k8s, claimUnclassed: false }, want: false },
  { desc: 'isOurs leaves another implementation\'s class', spec: { type: 'LoadBalancer', loadBalancerClass: 'metallb.io/metallb' }, cfg: k8s, want: false },
  { desc: 'isOurs leaves NodePort and ClusterIP services', spec: { type: 'NodePort' }, cfg: k8s, want: false },
]) {
  test(row.desc, () => assert.equal(isOurs(svc(row.spec), row.cfg), row.want));
}

const node = (name: string, o: { ready?: boolean; labels?: Record<string, string>; taint?: string; unschedulable?: boolean; ip?: string } = {}): KNode => ({
  metadata: { name, labels: o.labels ?? {} },
  spec: { unschedulable: o.unschedulable ?? false, taints: o.taint ? [{ key: o.taint, effect: 'NoSchedule' }] : [] },
  status: {
    conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    addresses: [
      { type: 'InternalIP', address: o.ip ?? `10.0.0.${name.slice(1)}` },
      { type: 'Hostname', address: name },
    ],
  },
});

test('eligibleNodes keeps Ready and cordoned nodes, drops NotReady, excluded-labelled and to-be-deleted ones', () => {
  const got = eligibleNodes(
    [
      node('n3'),
      node('n1'),
      node('n2', { ready: false }),
      node('n4', { labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': '' } }),
      node('n5', { taint: 'ToBeDeletedByClusterAutoscaler' }),
      node('n6', { unschedulable: true }),
    ],
    'InternalIP',
  );
  assert.deepEqual(got, [
    { name: 'n1', address: '10.0.0.1' },
    { name: 'n3', address: '10.0.0.3' },
    { name: 'n6', address: '10.0.0.6' },
  ]);
});

test('eligibleNodes uses the configured address type and skips nodes without one', () => {
  const noExternal = node('n1');
  assert.deepEqual(eligibleNodes([noExternal], 'ExternalIP'), []);
  assert.deepEqual(eligibleNodes([noExternal], 'Hostname'), [{ name: 'n1', address: 'n1' }]);
});

test('requestedIPs: the annotation wins over spec.loadBalancerIP, comma-separated', () => {
  assert.deepEqual(requestedIPs(svc({ type: 'LoadBalancer', loadBalancerIP: '192.0.2.1' })), ['192.0.2.1']);
  assert.deepEqual(requestedIPs(svc({ type: 'LoadBalancer', loadBalancerIP: '192.0.2.1' }, { 'edgeport.io/loadBalancerIPs': '192.0.2.5, 2001:db8::5' })), ['192.0.2.5', '2001:db8::5']);
  assert.deepEqual(requestedIPs(svc({ type: 'LoadBalancer' })), []);
});

test('serviceSettings: annotations, ClientIP affinity as sh with its timeout, bad annotation values reported', () => {
  const d = { scheduler: 'rr' as const, proxyProtocol: 'none' as const };
  const a = serviceSettings(svc({ type: 'LoadBalancer', sessionAffinity: 'ClientIP' }), d);
  assert.equal(a.scheduler, 'sh');
  assert.equal(a.affinityMs, 10_800_000);
  const b = serviceSettings(svc({ type: 'LoadBalancer', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }), d);
  assert.equal(b.affinityMs, 60_000);
  const c = serviceSettings(svc({ type: 'LoadBalancer' }, { 'edgeport.io/scheduler': 'wrr', 'edgeport.io/proxy-protocol': 'v2', 'edgeport.io/address-pool': 'lan', 'edgeport.io/allow-shared-ip': 'k1' }), d);
  assert.deepEqual([c.scheduler, c.proxyProtocol, c.pool, c.sharingKey, c.problems], ['wrr', 'v2', 'lan', 'k1', []]);
  const bad = serviceSettings(svc({ type: 'LoadBalancer' }, { 'edgeport.io/scheduler': 'fastest', 'edgeport.io/proxy-protocol': 'v3' }), d);
  assert.deepEqual([bad.scheduler, bad.proxyProtocol], ['rr', 'none']);
  assert.equal(bad.problems.length, 2);
  assert.match(bad.problems[0]!, /"fastest"/);
});

const defaults = builtinDefaults();
const base: Omit<PortSpec, 'port' | 'protocol' | 'backends' | 'scheduler' | 'proxyProtocol'> = {
  healthCheck: { type: 'tcp', ...defaults.healthCheck },
  timeouts: defaults.timeouts,
  retries: defaults.retries,
  limits: defaults.limits,
};
const nodeHealthCheck = { type: 'http' as const, port: 10256, path: '/healthz' };
const nodes = [
  { name: 'n1', address: '10.0.0.1' },
  { name: 'n2', address: '10.0.0.2' },
];

test('servicePorts: each port goes to its NodePort on every node, checked through kube-proxy healthz', () => {
  const s = svc({ type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP', nodePort: 30080 }, { port: 53, protocol: 'UDP', nodePort: 30053 }, { port: 9, protocol: 'SCTP', nodePort: 30009 }] });
  const r = servicePorts({ svc: s, nodes, local: new Map(), base, k8s: { nodeHealthCheck }, settings: serviceSettings(s, defaults) });
  assert.deepEqual(
    r.ports.map((p) => [p.port, p.protocol, p.backends.map((b) => `${b.address}:${b.port}*${b.weight}`), p.healthCheck.type, p.healthCheck.port, p.healthCheck.path]),
    [
      [80, 'TCP', ['10.0.0.1:30080*1', '10.0.0.2:30080*1'], 'http', 10256, '/healthz'],
      [53, 'UDP', ['10.0.0.1:30053*1', '10.0.0.2:30053*1'], 'http', 10256, '/healthz'],
    ],
  );
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /9\/SCTP/);
});

test('servicePorts with externalTrafficPolicy Local: checked on healthCheckNodePort, wrr weights = ready local endpoints', () => {
  const s = svc({ type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, ports: [{ port: 80, nodePort: 30080 }] }, { 'edgeport.io/scheduler': 'wrr' });
  const local = localEndpoints([
    { metadata: { name: 'a' }, endpoints: [{ nodeName: 'n1', conditions: { ready: true } }, { nodeName: 'n1' }, { nodeName: 'n1', conditions: { ready: false } }, { nodeName: 'n2' }] },
    { metadata: { name: 'b' }, endpoints: [{ nodeName: 'n1' }] },
  ]);
  assert.deepEqual([...local], [['n1', 3], ['n2', 1]]);
  const r = servicePorts({ svc: s, nodes, local, base, k8s: { nodeHealthCheck }, settings: serviceSettings(s, defaults) });
  const p = r.ports[0]!;
  assert.deepEqual([p.healthCheck.type, p.healthCheck.port, p.healthCheck.path], ['http', 32000, '/healthz']);
  assert.deepEqual(p.backends.map((b) => b.weight), [3, 1]);
  assert.deepEqual(r.problems, []);
});
