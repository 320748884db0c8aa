// The real edgeport binary with kubernetes.enabled against the fake API server: a
// LoadBalancer Service gets a VIP in its status, traffic to VIP:port reaches the nodes'
// NodePorts, and deleting the Service releases the VIP and lets the finalizer go.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { FakeApiServer } from '../support/fake-apiserver.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { freePort, startEdgeport, tempDir, writeConfig } from '../support/proc.ts';

type Obj = Record<string, any>;

function greet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('data', (d) => {
      resolve(d.toString().trim());
      s.destroy();
    });
    s.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('kubernetes: a LoadBalancer Service gets a VIP, is served on the NodePorts, and is released on delete', async (t) => {
  const api = new FakeApiServer();
  const url = await api.start();
  t.after(() => api.stop());
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const kubeconfig = writeKubeconfig(url, { dir: tmp.dir });
  const nodes = [
    ['n1', '127.0.0.2'],
    ['n2', '127.0.0.3'],
  ] as const;
  for (const [name, ip] of nodes) {
    api.objects.put({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { conditions: [{ type: 'Ready', status: 'True' }], addresses: [{ type: 'InternalIP', address: ip }] } });
  }
  const created = await fetch(`${url}/api/v1/namespaces/default/services`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] } }),
  });
  assert.equal(created.status, 201);
  const nodePort = ((await created.json()) as Obj).spec.ports[0].nodePort as number;
  // Each "node" serves the NodePort on its own loopback address and says who it is.
  const servers = nodes.map(([name, ip]) => net.createServer((c) => c.end(`${name}\n`)).listen(nodePort, ip));
  t.after(() => servers.forEach((s) => s.close()));

  const adminPort = await freePort();
  const config = writeConfig(
    tmp.dir,
    `node: { name: edge-1 }
announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
pools:
  - name: lab
    addresses: [ 127.0.3.0/29 ]
kubernetes:
  enabled: true
  nodeHealthCheck: { type: tcp, port: ${nodePort} }
`,
  );
  const ep = await startEdgeport(config, adminPort, ['--kubeconfig', kubeconfig]);
  t.after(() => ep.stop('SIGKILL'));

  let vip: string | undefined;
  for (let i = 0; i < 100 && !vip; i++) {
    vip = (api.objects.get('services', 'web', 'default') as Obj | undefined)?.status?.loadBalancer?.ingress?.[0]?.ip;
    if (!vip) await sleep(100);
  }
  assert.equal(vip, '127.0.3.0');
  const svc = api.objects.get('services', 'web', 'default') as Obj;
  assert.deepEqual(svc.status.loadBalancer.ingress, [{ ip: '127.0.3.0', ipMode: 'Proxy' }]);
  assert.deepEqual(svc.metadata.finalizers, ['edgeport.io/load-balancer']);
  await ep.waitLog((l) => l.msg === 'serving' && l.listener === '127.0.3.0:80/TCP');

  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(await greet(vip, 80));
  assert.deepEqual([...seen].sort(), ['n1', 'n2']);
  const doc = (await (await fetch(`${ep.admin}/status`)).json()) as Obj;
  const row = (doc.services as Obj[]).find((s) => s.name === 'k8s/default/web')!;
  assert.equal(row.vip, '127.0.3.0');
  assert.equal(row.pool, 'lab');
  assert.equal(row.owner, 'edge-1');

  const del = await fetch(`${url}/api/v1/namespaces/default/services/web`, { method: 'DELETE' });
  assert.ok(del.status === 200 || del.status === 202);
  for (let i = 0; i < 100 && api.objects.get('services', 'web', 'default'); i++) await sleep(100);
  assert.equal(api.objects.get('services', 'web', 'default'), undefined, 'the finalizer was removed and the Service is gone');
  await assert.rejects(greet(vip, 80), /ECONNREFUSED/);
  assert.equal(await ep.stop('SIGTERM'), 0);
});
