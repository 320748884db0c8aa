// Kubernetes end to end over a LAN of network namespaces: the fake API server, two "nodes"
// serving a NodePort (and kube-proxy's /healthz on 10256), the real edgeport binary with
// announce.mode arp, and a client that runs kubectl. A client reaches a Service's VIP after
// `kubectl apply`, learns it at Edgeport's MAC, and stops reaching it (no connection, no ARP
// answer) after `kubectl delete`, which waits for Edgeport's finalizer to go.
//
// The LAN is a bridge inside a namespace of its own (the host's interfaces are never
// touched); every other namespace has one veth `eth0` on it:
//
//   ns        address    runs
//   sw        -          br0 (the switch)
//   api       SUBNET.5   the fake API server on its 127.0.0.1, and a TCP relay SUBNET.5:6443 -> it
//   edge      SUBNET.1   edgeport run (kubernetes.enabled, announce arp on eth0, admin on its 127.0.0.1)
//   n1, n2    .11, .12   NodePort 30080 (answers its node name), :10256/healthz (200)
//   client    SUBNET.2   kubectl, arping, TCP connects to the VIP
//
// Traffic goes only to the namespaces' own loopbacks and to SUBNET addresses: no namespace
// has a route anywhere else.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { Agent, inNs, ip, netnsSkipReason, nsExec, uniqueName } from '../support/netns.ts';
import { BIN, ROOT, tempDir, writeConfig } from '../support/proc.ts';

const KUBECTL = '/usr/bin/kubectl';
const ARPING = ['/usr/bin/arping', '/usr/sbin/arping', '/bin/arping'].find((p) => existsSync(p));
const skip = netnsSkipReason() ?? (existsSync(KUBECTL) ? undefined : `${KUBECTL} is not installed`);

const SUBNET = `10.232.${100 + (process.pid % 50)}`;
const NODE_PORT = 30080;
const FAKE_API = pathToFileURL(join(ROOT, 'test/support/fake-apiserver.ts')).href;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Host {
  ns: string;
  addr: string;
}

/** A bridge in namespace `sw` and one namespace per host, each with eth0 on the bridge. */
async function createBridgedLan(hosts: Record<string, string>, made: string[]): Promise<{ sw: string; hosts: Record<string, Host> }> {
  const sw = uniqueName('sw');
  await ip(['netns', 'add', sw]);
  made.push(sw);
  await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', sw, 'link', 'set', 'br0', 'up']);
  const out: Record<string, Host> = {};
  let i = 0;
  for (const [role, addr] of Object.entries(hosts)) {
    const ns = uniqueName(role);
    await ip(['netns', 'add', ns]);
    made.push(ns);
    const port = `p${i++}`;
    await ip(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
    await ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    await ip(['-n', sw, 'link', 'set', port, 'master', 'br0']);
    await ip(['-n', sw, 'link', 'set', port, 'up']);
    out[role] = { ns, addr };
  }
  return { sw, hosts: out };
}

/** A long-running process inside a namespace; resolves once it printed its first line. */
async function spawnIn(ns: string, cmd: string, args: readonly string[], children: ChildProcess[], opts: { env?: NodeJS.ProcessEnv; waitLine?: boolean } = {}): Promise<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  if (opts.waitLine !== false) {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise((r) => child.stdout!.once('data', r)),
        exited.then((code) => {
          throw new Error(`${cmd} in ${ns} exited ${code}: ${out}`);
        }),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${cmd} in ${ns} printed nothing within 10 s: ${out}`)), 10_000))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
  return { child, output: () => out, exited };
}

/** The fake API server on the namespace's loopback, Nodes put in first, and a relay from ADDR:6443. */
const apiServerJs = (addr: string) => `
import net from 'node:net';
import { FakeApiServer } from '${FAKE_API}';
const api = new FakeApiServer();
await api.start();
for (const n of JSON.parse(process.env.EDGEPORT_TEST_NODES)) api.objects.put(n);
const port = Number(new URL(api.url).port);
net.createServer((c) => {
  const u = net.connect(port, '127.0.0.1');
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
  c.pipe(u).pipe(c);
}).listen(6443, '${addr}', () => console.log('ready'));
`;

/** A node: the NodePort answers the node's name; kube-proxy's healthz answers 200. */
const nodeJs = (name: string, addr: string) => `
import net from 'node:net';
import http from 'node:http';
net.createServer((c) => { c.on('error', () => {}); c.end('${name}\\n'); }).listen(${NODE_PORT}, '${addr}', () => {
  http.createServer((req, res) => { res.writeHead(req.url === '/healthz' ? 200 : 404); res.end('ok'); }).listen(10256, '${addr}', () => console.log('up'));
});
`;

/** `count` TCP connections one after the other; each gives {got} (first line) or {error}. */
const connectManyJs = (host: string, port: number, count: number, timeoutMs: number) => `
import net from 'node:net';
const one = () => new Promise((resolve) => {
  const s = net.connect({ host: '${host}', port: ${port} });
  const t = setTimeout(() => { s.destroy(); resolve({ error: 'timeout' }); }, ${timeoutMs});
  s.on('data', (d) => { clearTimeout(t); resolve({ got: d.toString().trim() }); s.destroy(); });
  s.on('error', (e) => { clearTimeout(t); resolve({ error: e.code }); });
});
const out = [];
for (let i = 0; i < ${count}; i++) out.push(await one());
console.log(JSON.stringify(out));
`;

const fetchJs = (url: string) => `
try {
  const r = await fetch('${url}');
  console.log(JSON.stringify({ status: r.status, body: await r.text() }));
} catch (e) { console.log(JSON.stringify({ status: 0, body: String(e) })); }
`;

const SERVICE_YAML = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: ${NODE_PORT}
`;

test('kubernetes over a LAN of namespaces: kubectl apply gives a VIP the client reaches through ARP; kubectl delete takes it away', { skip, timeout: 60_000 }, async (t) => {
  const t0 = performance.now();
  const mark: Record<string, number> = {};
  const lap = (what: string) => (mark[what] = Math.round(performance.now() - t0));
  const made: string[] = [];
  const children: ChildProcess[] = [];
  const tmp = tempDir('edgeport-k8s-netns-');
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    for (const ns of made.splice(0).reverse()) await ip(['netns', 'del', ns]).catch(() => {});
    tmp.cleanup();
  });

  const lan = await createBridgedLan({ edge: `${SUBNET}.1`, client: `${SUBNET}.2`, api: `${SUBNET}.5`, n1: `${SUBNET}.11`, n2: `${SUBNET}.12` }, made);
  const { edge, client, api } = lan.hosts as Record<'edge' | 'client' | 'api' | 'n1' | 'n2', Host>;
  lap('lan');

  const nodes = (['n1', 'n2'] as const).map((name) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      addresses: [
        { type: 'InternalIP', address: lan.hosts[name]!.addr },
        { type: 'Hostname', address: name },
      ],
    },
  }));
  const apiProc = await spawnIn(api.ns, process.execPath, ['--input-type=module', '-e', apiServerJs(api.addr)], children, { env: { ...process.env, EDGEPORT_TEST_NODES: JSON.stringify(nodes) } });
  for (const name of ['n1', 'n2'] as const) await spawnIn(lan.hosts[name]!.ns, process.execPath, ['--input-type=module', '-e', nodeJs(name, lan.hosts[name]!.addr)], children);
  lap('api and nodes up');

  // One kubeconfig for kubectl (in the client namespace) and Edgeport: the API server's LAN address.
  const kubeconfig = writeKubeconfig(`http://${api.addr}:6443`, { dir: tmp.dir });
  const kubectl = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'ip',
        ['netns', 'exec', client.ns, KUBECTL, '--kubeconfig', kubeconfig, '--cache-dir', join(tmp.dir, 'kubectl-cache'), ...args],
        { timeout: 20_000, env: { ...process.env, KUBECONFIG: '' } },
        (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout: String(stdout), stderr: String(stderr) }),
      );
    });

  const config = writeConfig(
    tmp.dir,
    `node: { name: edge-1 }
announce: { mode: arp, interface: eth0 }
admin: { listen: 127.0.0.1:9470 }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
pools:
  - name: lan
    addresses: [ ${SUBNET}.200-${SUBNET}.210 ]
kubernetes:
  enabled: true          # nodeHealthCheck: the default, http :10256/healthz
`,
  );
  const ep = await spawnIn(edge.ns, BIN, ['run', '--config', config, '--kubeconfig', kubeconfig], children, { waitLine: false });
  const edgeGet = async (path: string) => inNs<{ status: number; body: string }>(edge.ns, fetchJs(`http://127.0.0.1:9470${path}`));
  for (let until = Date.now() + 20_000; ; ) {
    if (ep.child.exitCode !== null) assert.fail(`edgeport exited ${ep.child.exitCode}: ${ep.output()}\napi: ${apiProc.output()}`);
    if ((await edgeGet('/readyz')).status === 200) break;
    if (Date.now() > until) assert.fail(`edgeport not ready within 20 s: ${ep.output()}`);
    await sleep(100);
  }
  lap('edgeport ready');

  // kubectl apply, then kubectl get svc until the EXTERNAL-IP column shows the VIP.
  const manifest = join(tmp.dir, 'web.yaml');
  writeFileSync(manifest, SERVICE_YAML);
  const applied = await kubectl('apply', '-f', manifest);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /service\/web created/);
  lap('kubectl apply');
  const vip = `${SUBNET}.200`;
  let row = '';
  for (let until = Date.now() + 15_000; ; ) {
    const got = await kubectl('get', 'svc', 'web', '--no-headers');
    row = got.stdout.trim();
    if (row.split(/\s+/)[3] === vip) break;
    if (Date.now() > until) assert.fail(`kubectl get svc web never showed ${vip}: ${JSON.stringify(row)} ${got.stderr}\nedgeport: ${ep.output()}`);
    await sleep(100);
  }
  lap('EXTERNAL-IP shown');
  // NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
  const cols = row.split(/\s+/);
  assert.deepEqual([cols[0], cols[1], cols[3], cols[4]], ['web', 'LoadBalancer', vip, `80:${NODE_PORT}/TCP`], row);

  // The client on the LAN reaches both nodes through the VIP.
  const answers = await inNs<{ got?: string; error?: string }[]>(client.ns, connectManyJs(vip, 80, 6, 3000));
  const names = answers.map((a) => a.got ?? `error ${a.error}`);
  assert.deepEqual([...names].sort(), ['n1', 'n1', 'n1', 'n2', 'n2', 'n2'], `rr spreads 6 connections 3:3 over both nodes: ${names.join(', ')}`);
  lap('client served');

  // It learned the VIP at Edgeport's MAC, and ARP for the VIP is answered by that MAC.
  const edgeMac = (await ip(['-n', edge.ns, 'link', 'show', 'eth0'])).match(/link\/ether ([0-9a-f:]+)/)![1]!;
  const neigh = await ip(['-n', client.ns, 'neigh', 'show', vip, 'dev', 'eth0']);
  assert.match(neigh, new RegExp(`lladdr ${edgeMac}\\b`), `the client's neighbour entry for ${vip}: ${neigh}`);
  const arp = async (): Promise<string | undefined> => {
    if (ARPING) {
      const r = await nsExec(client.ns, ARPING, ['-c', '1', '-w', '1', '-I', 'eth0', vip], 5000);
      return r.code === 0 ? /\[([0-9A-Fa-f:]{17})\]/.exec(r.stdout)?.[1]?.toLowerCase() : undefined;
    }
    const agent = new Agent(client.ns);
    try {
      return (await agent.call<{ mac?: string }>('arpRequest', { iface: 'eth0', senderIp: client.addr, targetIp: vip, timeoutMs: 1000 })).mac;
    } finally {
      await agent.kill();
    }
  };
  assert.equal(await arp(), edgeMac, `${ARPING ?? 'an ARP request'} from the client is answered with Edgeport's MAC`);

  // What the appliance and the cluster say about it.
  const status = JSON.parse((await edgeGet('/status')).body) as { services: { name: string; vip: string; ports: { port: number; backends: { address: string; port: number; up: boolean }[] }[] }[] };
  const svc = status.services.find((s) => s.name === 'k8s/default/web');
  assert.equal(svc?.vip, vip);
  assert.deepEqual(
    svc!.ports[0]!.backends.map((b) => `${b.address}:${b.port} ${b.up ? 'up' : 'down'}`),
    [`${SUBNET}.11:${NODE_PORT} up`, `${SUBNET}.12:${NODE_PORT} up`],
  );
  const described = await kubectl('describe', 'svc', 'web');
  assert.equal(described.code, 0, described.stderr);
  assert.match(described.stdout, new RegExp(`LoadBalancer Ingress:\\s+${vip.replace(/\./g, '\\.')}`));
  assert.match(described.stdout, new RegExp(`Normal\\s+IPAllocated\\s+.*Assigned IP ${vip.replace(/\./g, '\\.')} from pool lan`));
  const json = JSON.parse((await kubectl('get', 'svc', 'web', '-o', 'json')).stdout) as { metadata: { finalizers?: string[] }; status: unknown };
  assert.deepEqual(json.metadata.finalizers, ['edgeport.io/load-balancer']);
  assert.deepEqual(json.status, { loadBalancer: { ingress: [{ ip: vip, ipMode: 'Proxy' }] } });
  lap('checked ARP, status, describe');

  // kubectl delete waits until Edgeport released the VIP and removed its finalizer.
  const del = await kubectl('delete', 'svc', 'web', '--timeout=15s');
  assert.equal(del.code, 0, `${del.stdout}${del.stderr}\nedgeport: ${ep.output()}`);
  assert.match(del.stdout, /service "web" deleted/);
  lap('kubectl delete returned');
  const gone = await kubectl('get', 'svc', 'web');
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /NotFound|not found/);

  const after = await inNs<{ got?: string; error?: string }[]>(client.ns, connectManyJs(vip, 80, 1, 2000));
  assert.equal(after[0]!.got, undefined, `nothing serves ${vip}:80 after the delete: ${JSON.stringify(after)}`);
  await ip(['-n', client.ns, 'neigh', 'flush', 'dev', 'eth0']);
  assert.equal(await arp(), undefined, `nobody answers ARP for ${vip} after the delete`);
  lap('VIP gone');

  assert.equal(ep.child.exitCode, null, 'edgeport still runs');
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exited, 0, ep.output());
  lap('edgeport stopped');
  t.diagnostic(`timings (ms since start): ${JSON.stringify(mark)}`);
});
