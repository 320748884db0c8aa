// Kubernetes end to end over a LAN of network namespaces, with the docker-compose lab's own
// Edgeport configuration (config/lab/edgeport.yaml) and sample Service
// (config/lab/sample-service.yaml): the fake API server, two "nodes" named after the lab's
// agents serving the Service's NodePorts (TCP and UDP, netexec-style answers naming the node)
// and kube-proxy's health check node port, the real edgeport binary, and a client that runs
// kubectl. A client reaches the Service's VIP after `kubectl apply` (TCP balanced over both
// nodes, UDP answered), learns it at Edgeport's MAC, and stops reaching it (no connection, no
// UDP answer, no ARP answer) after `kubectl delete`, which waits for Edgeport's finalizer.
//
// Of the lab's configuration only what the namespaces need changes: the interface, the pools
// (moved into the test subnet, same last octets + 100), kubernetes.kubeconfig and state.dir;
// the test asserts that everything else (kubernetes, dataplane, admin, ...) is the lab's.
// Of the sample manifest only the Service is applied (the fake serves core v1, not apps/v1).
//
// The LAN is a bridge inside a namespace of its own (the host's interfaces are never
// touched); every other namespace has one veth `eth0` on it:
//
//   ns        address    runs
//   sw        -          br0 (the switch)
//   api       SUBNET.5   the fake API server (test/support/fake-apiserver-main.ts) on SUBNET.5:6443
//   edge      SUBNET.1   edgeport run --config (the lab's, adapted); admin on the lab's port
//   a1, a2    .11, .12   nodes agent-1, agent-2: the Service's nodePorts (allocated by the fake
//                        from 30086), its healthCheckNodePort (externalTrafficPolicy: Local)
//   client    SUBNET.2   kubectl, arping, HTTP and UDP to the VIP
//
// Traffic goes only to the namespaces' own loopbacks and to SUBNET addresses: no namespace
// has a route anywhere else.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { parseConfig } from '../../lb/config/parse.ts';
import { writeKubeconfig } from '../support/kubeconfig.ts';
import { Agent, inNs, ip, netnsSkipReason, nsExec, uniqueName } from '../support/netns.ts';
import { BIN, ROOT, tempDir, writeConfig } from '../support/proc.ts';

const KUBECTL = '/usr/bin/kubectl';
const ARPING = ['/usr/bin/arping', '/usr/sbin/arping', '/bin/arping'].find((p) => existsSync(p));
const skip = netnsSkipReason() ?? (existsSync(KUBECTL) ? undefined : `${KUBECTL} is not installed`);

const SUBNET = `10.232.${100 + (process.pid % 50)}`;
const IFACE = 'eth0';
const LAB_CONFIG = join(ROOT, 'config/lab/edgeport.yaml');
const LAB_MANIFEST = join(ROOT, 'config/lab/sample-service.yaml');
const FAKE_API_MAIN = join(ROOT, 'test/support/fake-apiserver-main.ts');
/** The lab's agents; the namespaces a1 and a2 play them. */
const NODES = [
  { role: 'a1', name: 'agent-1' },
  { role: 'a2', name: 'agent-2' },
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Host {
  ns: string;
  addr: string;
}

interface ServicePort {
  name?: string;
  port: number;
  protocol?: string;
  nodePort?: number;
}

interface ServiceObj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; finalizers?: string[] };
  spec: { type?: string; externalTrafficPolicy?: string; healthCheckNodePort?: number; ports: ServicePort[] };
  status?: unknown;
}

/** A lab address moved into the test subnet: a.b.c.D -> SUBNET.(100 + D). */
function intoSubnet(addr: string): string {
  const m = /^\d+\.\d+\.\d+\.(\d+)$/.exec(addr);
  assert.ok(m, `the lab's pools are IPv4 addresses or ranges of them, not "${addr}"`);
  const last = 100 + Number(m[1]);
  assert.ok(last < 255, `${addr} has no place in ${SUBNET}.0/24`);
  return `${SUBNET}.${last}`;
}

/** config/lab/edgeport.yaml, changed only where the namespaces need it. */
function labConfigForNamespaces(kubeconfig: string, stateDir: string): string {
  const doc = parseYaml(readFileSync(LAB_CONFIG, 'utf8')) as {
    announce: { interface: string };
    pools: { addresses: string[] }[];
    kubernetes: { kubeconfig?: string };
    state?: { dir?: string };
  };
  doc.announce.interface = IFACE;
  for (const pool of doc.pools) pool.addresses = pool.addresses.map((r) => r.split('-').map(intoSubnet).join('-'));
  doc.kubernetes.kubeconfig = kubeconfig;
  doc.state = { ...doc.state, dir: stateDir };
  return stringify(doc);
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

/**
 * A node: what the lab's agnhost netexec pod answers, on the Service's nodePorts (TCP: HTTP
 * GET /hostname gives the node's name; UDP: the datagram "hostname" gives it, "echo X" gives
 * X), and kube-proxy's health check port answering 200 with one local endpoint. Prints
 * "up" once everything listens, then "health" for each health check it answers.
 */
const nodeJs = (name: string, addr: string, ports: readonly { protocol: string; nodePort: number }[], healthPort: number, svc: { namespace: string; name: string }) => `
import dgram from 'node:dgram';
import http from 'node:http';
const listening = [];
for (const p of ${JSON.stringify(ports)}) {
  if (p.protocol === 'UDP') {
    const s = dgram.createSocket('udp4');
    s.on('message', (m, from) => {
      const text = m.toString().trim();
      const answer = text.toLowerCase() === 'hostname' ? '${name}' : text.startsWith('echo ') ? text.slice(5) : '';
      s.send(answer, from.port, from.address);
    });
    listening.push(new Promise((r) => s.bind(p.nodePort, '${addr}', r)));
  } else {
    const s = http.createServer((req, res) => {
      res.writeHead(req.url === '/hostname' || req.url === '/healthz' ? 200 : 404);
      res.end(req.url === '/hostname' ? '${name}' : 'ok');
    });
    listening.push(new Promise((r) => s.listen(p.nodePort, '${addr}', r)));
  }
}
const health = http.createServer((req, res) => {
  console.log('health ' + req.url);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ service: ${JSON.stringify(svc)}, localEndpoints: 1, serviceProxyHealthy: true }));
});
listening.push(new Promise((r) => health.listen(${healthPort}, '${addr}', r)));
await Promise.all(listening);
console.log('up');
`;

/** `count` HTTP GETs of /hostname, each on a connection of its own: {got} (the body) or {error}. */
const httpManyJs = (host: string, port: number, count: number, timeoutMs: number) => `
import http from 'node:http';
const one = () => new Promise((resolve) => {
  const req = http.get({ host: '${host}', port: ${port}, path: '/hostname', agent: false, timeout: ${timeoutMs} }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => resolve(res.statusCode === 200 ? { got: body.trim() } : { error: 'HTTP ' + res.statusCode }));
  });
  req.on('timeout', () => { req.destroy(); resolve({ error: 'timeout' }); });
  req.on('error', (e) => resolve({ error: e.code }));
});
const out = [];
for (let i = 0; i < ${count}; i++) out.push(await one());
console.log(JSON.stringify(out));
`;

/** `count` datagrams "hostname", each from a socket (a UDP session) of its own: {got} or {error}. */
const udpManyJs = (host: string, port: number, count: number, timeoutMs: number) => `
import dgram from 'node:dgram';
const one = () => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  const done = (v) => { clearTimeout(t); s.close(); resolve(v); };
  const t = setTimeout(() => done({ error: 'timeout' }), ${timeoutMs});
  s.on('message', (m) => done({ got: m.toString().trim() }));
  s.on('error', (e) => done({ error: e.code }));
  s.send('hostname', ${port}, '${host}');
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

test('kubernetes over a LAN of namespaces, with the lab\'s config and sample Service: kubectl apply gives a VIP the client reaches through ARP (TCP balanced over both nodes, UDP answered); kubectl delete takes it away', { skip, timeout: 60_000 }, async (t) => {
  const t0 = performance.now();
  const mark: Record<string, number> = {};
  const lap = (what: string) => (mark[what] = Math.round(performance.now() - t0));
  const made: string[] = [];
  const children: ChildProcess[] = [];
  let apiServer: Agent | undefined;
  const tmp = tempDir('edgeport-k8s-netns-');
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    await apiServer?.kill();
    for (const ns of made.splice(0).reverse()) await ip(['netns', 'del', ns]).catch(() => {});
    tmp.cleanup();
  });

  // Edgeport's configuration: the lab's, adapted to the namespaces, and otherwise the same.
  const kubeconfig = join(tmp.dir, 'kubeconfig');
  const configText = labConfigForNamespaces(kubeconfig, join(tmp.dir, 'state'));
  const lab = parseConfig(readFileSync(LAB_CONFIG, 'utf8'), { hostname: 'h' });
  const ours = parseConfig(configText, { hostname: 'h' });
  assert.deepEqual(
    {
      ...ours,
      announce: { ...ours.announce, interface: lab.announce.interface },
      pools: ours.pools.map((p, i) => ({ ...p, addresses: lab.pools[i]?.addresses })),
      kubernetes: { ...ours.kubernetes, kubeconfig: lab.kubernetes.kubeconfig },
      state: { ...ours.state, dir: lab.state.dir },
    },
    lab,
    'only the interface, the pool addresses, kubernetes.kubeconfig and state.dir differ from config/lab/edgeport.yaml',
  );
  assert.equal(ours.kubernetes.enabled, true);
  assert.equal(ours.announce.mode, 'arp');
  assert.equal(ours.services.length, 0, 'the lab serves only what Kubernetes asks for');
  const pool = ours.pools[0]!;
  const vip = pool.addresses[0]!.split('-')[0]!;
  const adminPort = ours.admin.listen.port;
  const config = writeConfig(tmp.dir, configText);

  // The Service of the lab's sample manifest (the DaemonSet is apps/v1, which the fake does not serve).
  const docs = parseAllDocuments(readFileSync(LAB_MANIFEST, 'utf8')).map((d) => d.toJS() as ServiceObj);
  const services = docs.filter((d) => d.kind === 'Service');
  assert.equal(services.length, 1, `${LAB_MANIFEST} has one Service`);
  const sample = services[0]!;
  const svcName = sample.metadata.name;
  const svcNs = sample.metadata.namespace ?? 'default';
  assert.deepEqual(sample.spec.ports.map((p) => p.protocol ?? 'TCP').sort(), ['TCP', 'UDP'], 'the sample Service has a TCP and a UDP port');
  const manifest = join(tmp.dir, 'sample-service.yaml');
  writeFileSync(manifest, services.map((s) => stringify(s)).join('---\n'));

  const lan = await createBridgedLan({ edge: `${SUBNET}.1`, client: `${SUBNET}.2`, api: `${SUBNET}.5`, a1: `${SUBNET}.11`, a2: `${SUBNET}.12` }, made);
  const { edge, client, api } = lan.hosts as Record<'edge' | 'client' | 'api', Host>;
  const nodeHost = (role: string) => lan.hosts[role]!;
  lap('lan');

  apiServer = new Agent(api.ns, FAKE_API_MAIN, [api.addr, '6443']);
  assert.equal(await apiServer.call('url'), `http://${api.addr}:6443`);
  for (const n of NODES) {
    await apiServer.call('put', {
      obj: {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } },
        status: {
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
          addresses: [
            { type: 'InternalIP', address: nodeHost(n.role).addr },
            { type: 'Hostname', address: n.name },
          ],
        },
      },
    });
  }
  lap('api up');

  // One kubeconfig for kubectl (in the client namespace) and Edgeport: the API server's LAN address.
  writeKubeconfig(`http://${api.addr}:6443`, { dir: tmp.dir, name: 'kubeconfig' });
  const kubectl = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'ip',
        ['netns', 'exec', client.ns, KUBECTL, '--kubeconfig', kubeconfig, '--cache-dir', join(tmp.dir, 'kubectl-cache'), ...args],
        { timeout: 20_000, env: { ...process.env, KUBECONFIG: '' } },
        (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout: String(stdout), stderr: String(stderr) }),
      );
    });

  // As in the lab: edgeport run --config (the kubeconfig comes from the configuration).
  const ep = await spawnIn(edge.ns, BIN, ['run', '--config', config], children, { waitLine: false });
  const edgeGet = async (path: string) => inNs<{ status: number; body: string }>(edge.ns, fetchJs(`http://127.0.0.1:${adminPort}${path}`));
  for (let until = Date.now() + 20_000; ; ) {
    if (ep.child.exitCode !== null) assert.fail(`edgeport exited ${ep.child.exitCode}: ${ep.output()}\napi: ${apiServer.stderr}`);
    if ((await edgeGet('/readyz')).status === 200) break;
    if (Date.now() > until) assert.fail(`edgeport not ready within 20 s: ${ep.output()}`);
    await sleep(100);
  }
  lap('edgeport ready');

  // kubectl apply; the API server allocates the nodePorts (and, for externalTrafficPolicy
  // Local, the healthCheckNodePort) the nodes then serve, as kube-proxy would.
  const applied = await kubectl('apply', '-f', manifest);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, new RegExp(`service/${svcName} created`));
  lap('kubectl apply');
  const got = await kubectl('get', 'svc', svcName, '-n', svcNs, '-o', 'json');
  assert.equal(got.code, 0, got.stderr);
  const created = JSON.parse(got.stdout) as ServiceObj;
  const ports = created.spec.ports.map((p) => ({ port: p.port, protocol: p.protocol ?? 'TCP', nodePort: p.nodePort! }));
  for (const [i, p] of ports.entries()) {
    assert.ok(Number.isInteger(p.nodePort), `${p.port}/${p.protocol} has a nodePort`);
    const asked = sample.spec.ports[i]!.nodePort;
    if (asked !== undefined) assert.equal(p.nodePort, asked);
  }
  const local = created.spec.externalTrafficPolicy === 'Local';
  assert.equal(local, sample.spec.externalTrafficPolicy === 'Local');
  const healthPort = local ? created.spec.healthCheckNodePort! : ours.kubernetes.nodeHealthCheck.port;
  assert.ok(Number.isInteger(healthPort), 'a Local Service has a healthCheckNodePort');
  const nodeProcs = [];
  for (const n of NODES) {
    const h = nodeHost(n.role);
    nodeProcs.push(await spawnIn(h.ns, process.execPath, ['--input-type=module', '-e', nodeJs(n.name, h.addr, ports, healthPort, { namespace: svcNs, name: svcName })], children));
  }
  lap('nodes up');

  // kubectl get svc until the EXTERNAL-IP column shows the VIP.
  let row = '';
  for (let until = Date.now() + 15_000; ; ) {
    const r = await kubectl('get', 'svc', svcName, '-n', svcNs, '--no-headers');
    row = r.stdout.trim();
    if (row.split(/\s+/)[3] === vip) break;
    if (Date.now() > until) assert.fail(`kubectl get svc ${svcName} never showed ${vip}: ${JSON.stringify(row)} ${r.stderr}\nedgeport: ${ep.output()}`);
    await sleep(100);
  }
  lap('EXTERNAL-IP shown');
  // What README's walk-through waits for in `docker compose logs -f edgeport`.
  const taken = ep.output().split('\n').filter((l) => l.includes('"VIP taken"')).map((l) => JSON.parse(l) as { vip?: string; interface?: string });
  assert.deepEqual(taken.map((l) => [l.vip, l.interface]), [[vip, IFACE]], `edgeport logs "VIP taken" for ${vip}`);
  // NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
  const cols = row.split(/\s+/);
  assert.deepEqual([cols[0], cols[1], cols[3], cols[4]], [svcName, 'LoadBalancer', vip, ports.map((p) => `${p.port}:${p.nodePort}/${p.protocol}`).join(',')], row);

  // Edgeport has both nodes on every port, checked healthy on the health port the nodes serve.
  type Status = { services: { name: string; vip: string; pool: string; ports: { port: number; protocol: string; backends: { address: string; port: number; up: boolean; lastCheck: string }[] }[] }[] };
  const want = ports.map((p) => ({ port: `${p.port}/${p.protocol}`, backends: NODES.map((n) => `${nodeHost(n.role).addr}:${p.nodePort} up ok`) }));
  let seen: unknown;
  for (let until = Date.now() + 10_000; ; ) {
    const status = JSON.parse((await edgeGet('/status')).body) as Status;
    const svc = status.services.find((s) => s.name === `k8s/${svcNs}/${svcName}`);
    seen = svc?.ports.map((p) => ({ port: `${p.port}/${p.protocol}`, backends: p.backends.map((b) => `${b.address}:${b.port} ${b.up ? 'up' : 'down'} ${b.lastCheck}`) }));
    if (svc?.vip === vip && svc.pool === pool.name && JSON.stringify(seen) === JSON.stringify(want)) break;
    if (Date.now() > until) assert.deepEqual(seen, want, `edgeport's /status for the Service (vip ${svc?.vip}, pool ${svc?.pool})`);
    await sleep(200);
  }
  for (const [i, p] of nodeProcs.entries()) assert.match(p.output(), /^health \/healthz$/m, `${NODES[i]!.name} got health checks on ${healthPort}`);
  lap('backends checked');

  // The client on the LAN: HTTP to the TCP port spreads over both nodes (the sample asks for
  // rr); the UDP port answers with a node's name too, each new session on the next node.
  const tcp = ports.find((p) => p.protocol === 'TCP')!;
  const udp = ports.find((p) => p.protocol === 'UDP')!;
  const names = (await inNs<{ got?: string; error?: string }[]>(client.ns, httpManyJs(vip, tcp.port, 6, 3000))).map((a) => a.got ?? `error ${a.error}`);
  const nodeNames = NODES.map((n) => n.name);
  assert.deepEqual([...names].sort(), [...nodeNames, ...nodeNames, ...nodeNames].sort(), `rr spreads 6 connections to ${vip}:${tcp.port} 3:3 over both nodes: ${names.join(', ')}`);
  lap('client served TCP');
  const udpNames = (await inNs<{ got?: string; error?: string }[]>(client.ns, udpManyJs(vip, udp.port, 4, 2000))).map((a) => a.got ?? `error ${a.error}`);
  assert.deepEqual([...udpNames].sort(), [...nodeNames, ...nodeNames].sort(), `4 UDP sessions to ${vip}:${udp.port} answered by both nodes 2:2: ${udpNames.join(', ')}`);
  lap('client served UDP');

  // It learned the VIP at Edgeport's MAC, and ARP for the VIP is answered by that MAC.
  const edgeMac = (await ip(['-n', edge.ns, 'link', 'show', IFACE])).match(/link\/ether ([0-9a-f:]+)/)![1]!;
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

  // What the cluster says about it.
  const described = await kubectl('describe', 'svc', svcName, '-n', svcNs);
  assert.equal(described.code, 0, described.stderr);
  const vipRe = vip.replace(/\./g, '\\.');
  assert.match(described.stdout, new RegExp(`LoadBalancer Ingress:\\s+${vipRe}`));
  assert.match(described.stdout, new RegExp(`Normal\\s+IPAllocated\\s+.*Assigned IP ${vipRe} from pool ${pool.name}`));
  const json = JSON.parse((await kubectl('get', 'svc', svcName, '-n', svcNs, '-o', 'json')).stdout) as ServiceObj;
  assert.deepEqual(json.metadata.finalizers, ['edgeport.io/load-balancer']);
  assert.deepEqual(json.status, { loadBalancer: { ingress: [{ ip: vip, ipMode: 'Proxy' }] } });
  lap('checked ARP, describe');

  // kubectl delete waits until Edgeport released the VIP and removed its finalizer.
  const del = await kubectl('delete', '-f', manifest, '--timeout=15s');
  assert.equal(del.code, 0, `${del.stdout}${del.stderr}\nedgeport: ${ep.output()}`);
  assert.match(del.stdout, new RegExp(`service "${svcName}" deleted`));
  lap('kubectl delete returned');
  const gone = await kubectl('get', 'svc', svcName, '-n', svcNs);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /NotFound|not found/);

  const after = await inNs<{ got?: string; error?: string }[]>(client.ns, httpManyJs(vip, tcp.port, 1, 2000));
  assert.equal(after[0]!.got, undefined, `nothing serves ${vip}:${tcp.port} after the delete: ${JSON.stringify(after)}`);
  const afterUdp = await inNs<{ got?: string; error?: string }[]>(client.ns, udpManyJs(vip, udp.port, 1, 1000));
  assert.equal(afterUdp[0]!.got, undefined, `nothing answers ${vip}:${udp.port}/UDP after the delete: ${JSON.stringify(afterUdp)}`);
  await ip(['-n', client.ns, 'neigh', 'flush', 'dev', 'eth0']);
  assert.equal(await arp(), undefined, `nobody answers ARP for ${vip} after the delete`);
  lap('VIP gone');

  assert.equal(ep.child.exitCode, null, 'edgeport still runs');
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exited, 0, ep.output());
  lap('edgeport stopped');
  t.diagnostic(`timings (ms since start): ${JSON.stringify(mark)}`);
});
