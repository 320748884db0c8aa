import assert from 'node:assert/strict';
import { test } from 'node:test';
import { builtinDefaults } from '../../lb/config/parse.ts';
import type { PortSpec } from '../../lb/core/types.ts';
import {
  eligibleNodes,
  ingressFor,
  ingressMatches,
  isOurs,
  isPortErrorReason,
  localEndpoints,
  PORT_ERROR_BIND_FAILED,
  PORT_ERROR_NO_NODE_PORT,
  PORT_ERROR_PORT_CLASH,
  PORT_ERROR_UNSUPPORTED_PROTOCOL,
  portStatuses,
  requestedIPs,
  servablePorts,
  servicePorts,
  serviceSettings,
  type KNode,
  type KService,
} from '../../lb/k8s/convert.ts';

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

test('requestedIPs gives canonical addresses (as the status holds them) and leaves unparseable ones as written', () => {
  assert.deepEqual(requestedIPs(svc({ type: 'LoadBalancer' }, { 'edgeport.io/loadBalancerIPs': '2001:DB8:0::5,10.0.0.1 ,not-an-ip' })), ['2001:db8::5', '10.0.0.1', 'not-an-ip']);
  assert.deepEqual(requestedIPs(svc({ type: 'LoadBalancer', loadBalancerIP: ' 192.0.2.7' })), ['192.0.2.7']);
});

test('servablePorts: the TCP and UDP port/protocol pairs (protocol defaulted to TCP), SCTP left out', () => {
  const s = svc({ type: 'LoadBalancer', ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }, { port: 9, protocol: 'SCTP' }, { port: 443, protocol: 'tcp' }] });
  assert.deepEqual(servablePorts(s), [
    { port: 80, protocol: 'TCP' },
    { port: 53, protocol: 'UDP' },
    { port: 443, protocol: 'TCP' },
  ]);
});

const PORT_ERRORS = [PORT_ERROR_BIND_FAILED, PORT_ERROR_PORT_CLASH, PORT_ERROR_UNSUPPORTED_PROTOCOL, PORT_ERROR_NO_NODE_PORT];

for (const row of [
  { s: 'edgeport.io/BindFailed', want: true },
  { s: 'PortClash', want: true },
  { s: 'lb.example.com/Some_Reason.v2', want: true },
  { s: 'EADDRINUSE: address already in use', want: false },
  { s: 'edgeport.io/', want: false },
  { s: 'Edgeport.io/BindFailed', want: false },
  { s: 'edgeport.io/-Bind', want: false },
  { s: '', want: false },
  { s: `edgeport.io/${'A'.repeat(305)}`, want: false },
  { s: `edgeport.io/${'A'.repeat(304)}`, want: true },
]) {
  test(`isPortErrorReason(${JSON.stringify(row.s.length > 40 ? `${row.s.slice(0, 20)}...(${row.s.length})` : row.s)}) is ${row.want}`, () => assert.equal(isPortErrorReason(row.s), row.want));
}

test('isPortErrorReason: every reason Edgeport writes is a valid PortStatus.error', () => {
  for (const r of PORT_ERRORS) assert.ok(isPortErrorReason(r), r);
});

const ports3 = { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }, { port: 53, protocol: 'UDP', nodePort: 30053 }, { port: 9, protocol: 'SCTP', nodePort: 30009 }] };
for (const row of [
  { desc: 'every port served: no ports in the ingress entry', spec: { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] }, clashing: [], reported: [], want: undefined },
  {
    desc: 'one port failing: every port listed, the failing one with its reason (SCTP unsupported)',
    spec: ports3,
    clashing: [],
    reported: [],
    want: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }, { port: 9, protocol: 'SCTP', error: PORT_ERROR_UNSUPPORTED_PROTOCOL }],
  },
  {
    desc: 'a clash and a bind failure, each on its port; a report for a port the Service lacks is dropped',
    spec: { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }, { port: 53, protocol: 'UDP', nodePort: 30053 }] },
    clashing: ['80/TCP'],
    reported: [['53/UDP', PORT_ERROR_BIND_FAILED], ['8080/TCP', PORT_ERROR_BIND_FAILED]],
    want: [{ port: 80, protocol: 'TCP', error: PORT_ERROR_PORT_CLASH }, { port: 53, protocol: 'UDP', error: PORT_ERROR_BIND_FAILED }],
  },
  {
    desc: 'a port without nodePort cannot be served; its own problem wins over a clash',
    spec: { type: 'LoadBalancer', ports: [{ port: 80 }, { port: 81, nodePort: 30081 }] },
    clashing: ['80/TCP'],
    reported: [],
    want: [{ port: 80, protocol: 'TCP', error: PORT_ERROR_NO_NODE_PORT }, { port: 81, protocol: 'TCP' }],
  },
] as const) {
  test(`portStatuses: ${row.desc}`, () => {
    const got = portStatuses(svc(row.spec as KService['spec']), new Set<string>(row.clashing), new Map<string, string>(row.reported as unknown as [string, string][]));
    assert.deepEqual(got, row.want);
  });
}

test('ingressFor writes ipMode Proxy, and ports only when given', () => {
  assert.deepEqual(ingressFor('10.0.0.1', undefined), { ip: '10.0.0.1', ipMode: 'Proxy' });
  assert.deepEqual(ingressFor('10.0.0.1', [{ port: 80, protocol: 'TCP', error: PORT_ERROR_BIND_FAILED }]), { ip: '10.0.0.1', ipMode: 'Proxy', ports: [{ port: 80, protocol: 'TCP', error: PORT_ERROR_BIND_FAILED }] });
});

test('ingressMatches compares ip, ipMode, hostname and ports field by field, typed (undefined fields) or plain JSON alike', () => {
  const withStatus = (ingress: unknown[]): KService => ({ metadata: { name: 's' }, status: { loadBalancer: { ingress: ingress as never } } });
  const want = [ingressFor('10.0.0.1', [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP', error: PORT_ERROR_BIND_FAILED }])];
  // As client-node deserializes a list: every optional field present, undefined.
  const typed = { hostname: undefined, ip: '10.0.0.1', ipMode: 'Proxy', ports: [{ error: undefined, port: 80, protocol: 'TCP' }, { error: PORT_ERROR_BIND_FAILED, port: 53, protocol: 'UDP' }] };
  assert.equal(ingressMatches(withStatus([typed]), want), true);
  assert.equal(ingressMatches(withStatus([{ ...typed, ports: undefined }]), want), false);
  assert.equal(ingressMatches(withStatus([{ ...typed, ipMode: 'VIP' }]), want), false);
  assert.equal(ingressMatches(withStatus([{ ...typed, hostname: 'lb.example.com' }]), want), false);
  assert.equal(ingressMatches(withStatus([typed, typed]), want), false);
  assert.equal(ingressMatches(withStatus([{ ip: '10.0.0.1', ipMode: 'Proxy', ports: undefined }]), [ingressFor('10.0.0.1', undefined)]), true);
  assert.equal(ingressMatches({ metadata: { name: 's' } }, []), true);
});

test('servicePorts carries serviceSettings to every port: ClientIP affinity as sh (timeout default 10800 s), edgeport.io/scheduler and edgeport.io/proxy-protocol', () => {
  const two = [{ port: 80, nodePort: 30080 }, { port: 53, protocol: 'UDP', nodePort: 30053 }];
  const rows: { spec: KService['spec']; ann: Record<string, string>; want: unknown[] }[] = [
    { spec: { type: 'LoadBalancer', sessionAffinity: 'ClientIP', ports: two }, ann: {}, want: ['sh', 'none', 10_800_000] },
    { spec: { type: 'LoadBalancer', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } }, ports: two }, ann: { 'edgeport.io/proxy-protocol': 'v1' }, want: ['sh', 'v1', 300_000] },
    { spec: { type: 'LoadBalancer', sessionAffinity: 'None', ports: two }, ann: { 'edgeport.io/scheduler': 'lc', 'edgeport.io/proxy-protocol': 'v2' }, want: ['lc', 'v2', undefined] },
    { spec: { type: 'LoadBalancer', ports: two }, ann: {}, want: ['rr', 'none', undefined] },
  ];
  for (const row of rows) {
    const s = svc(row.spec, row.ann);
    const settings = serviceSettings(s, defaults);
    const r = servicePorts({ svc: s, nodes, local: new Map(), base, k8s: { nodeHealthCheck }, settings });
    assert.equal(r.ports.length, 2);
    for (const p of r.ports) assert.deepEqual([p.scheduler, p.proxyProtocol, p.affinityTimeout], row.want, JSON.stringify(row));
  }
});

test('serviceSettings: an explicit edgeport.io/scheduler overrides ClientIP affinity, and says so', () => {
  const s = serviceSettings(svc({ type: 'LoadBalancer', sessionAffinity: 'ClientIP' }, { 'edgeport.io/scheduler': 'rr' }), { scheduler: 'rr', proxyProtocol: 'none' });
  assert.equal(s.scheduler, 'rr');
  assert.equal(s.problems.length, 1);
  assert.match(s.problems[0]!, /overrides sessionAffinity ClientIP/);
  assert.deepEqual(serviceSettings(svc({ type: 'LoadBalancer', sessionAffinity: 'ClientIP' }, { 'edgeport.io/scheduler': 'sh' }), { scheduler: 'rr', proxyProtocol: 'none' }).problems, []);
});

test('eligibleNodes drops a node whose Ready condition is Unknown or missing', () => {
  const unknown = node('n1');
  unknown.status!.conditions = [{ type: 'Ready', status: 'Unknown' }];
  const none = node('n2');
  none.status!.conditions = [{ type: 'MemoryPressure', status: 'False' }];
  assert.deepEqual(eligibleNodes([unknown, none, node('n3')], 'InternalIP'), [{ name: 'n3', address: '10.0.0.3' }]);
});
