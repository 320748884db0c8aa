// The real edgeport binary with announce.mode arp, in a network namespace the test creates:
// a client in another namespace reaches a fixed VIP and a pool VIP over a veth "LAN" (ARP
// answered by Edgeport, routes made local by Edgeport), the pool address survives a restart,
// and SIGTERM removes what Edgeport added.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { connectJs, createLan, inNs, ip, netnsSkipReason, nsExec } from '../support/netns.ts';
import { BIN, tempDir, writeConfig } from '../support/proc.ts';

const skip = netnsSkipReason();


const fetchJs = (url: string) => `
try {
  const r = await fetch('${url}');
  console.log(JSON.stringify({ status: r.status, body: await r.text() }));
} catch (e) { console.log(JSON.stringify({ status: 0, body: String(e) })); }
`;

test('announce.mode arp: a client on the LAN reaches fixed and pool VIPs; restart keeps the pool address; SIGTERM cleans up', { skip }, async (t) => {
  const subnet = `10.231.${100 + (process.pid % 50)}`;
  const lan = await createLan(subnet);
  t.after(() => lan.cleanup());
  const tmp = tempDir();
  t.after(tmp.cleanup);

  // A backend inside the edge namespace, on its loopback.
  const backend = spawn('ip', ['netns', 'exec', lan.edge.ns, process.execPath, '--input-type=module', '-e', `
    import net from 'node:net';
    net.createServer((c) => { c.on('error', () => {}); c.end('hello from backend\\n'); }).listen(7000, '127.0.0.1', () => console.log('up'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => backend.kill('SIGKILL'));
  await new Promise((r) => backend.stdout.once('data', r));

  const fixedVip = `${subnet}.50`;
  const config = writeConfig(
    tmp.dir,
    `node: { name: edge-test }
announce: { mode: arp, interface: ${lan.edge.iface} }
admin: { listen: 127.0.0.1:9470 }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
pools:
  - name: lan
    addresses: [ ${subnet}.100-${subnet}.110 ]
services:
  - name: fixed
    address: ${fixedVip}
    ports: [ { port: 80, protocol: TCP, backends: [ { address: 127.0.0.1, port: 7000 } ] } ]
  - name: pooled
    pool: lan
    ports: [ { port: 8080, protocol: TCP, backends: [ { address: 127.0.0.1, port: 7000 } ] } ]
`,
  );

  const run = () => {
    const child = spawn('ip', ['netns', 'exec', lan.edge.ns, BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    t.after(() => child.kill('SIGKILL'));
    return { child, exited, out: () => out };
  };
  const waitReady = async (out: () => string) => {
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const r = await inNs<{ status: number }>(lan.edge.ns, fetchJs('http://127.0.0.1:9470/readyz'));
      if (r.status === 200) return;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`not ready: ${out()}`);
  };
  const status = async () => JSON.parse((await inNs<{ body: string }>(lan.edge.ns, fetchJs('http://127.0.0.1:9470/status'))).body) as { services: { name: string; vip: string; owner: string; preferredOwner: string }[] };

  const first = run();
  await waitReady(first.out);
  const doc = await status();
  const pooledVip = doc.services.find((s) => s.name === 'pooled')!.vip;
  assert.equal(pooledVip, `${subnet}.100`, 'the lowest free pool address');
  assert.deepEqual(
    doc.services.map((s) => [s.name, s.owner, s.preferredOwner]),
    [
      ['fixed', 'edge-test', 'edge-test'],
      ['pooled', 'edge-test', 'edge-test'],
    ],
  );
  // Sysctls set by Edgeport on the announce interface.
  const sysctl = await nsExec(lan.edge.ns, 'sysctl', ['-n', `net.ipv4.conf.${lan.edge.iface}.arp_ignore`, `net.ipv4.conf.${lan.edge.iface}.arp_announce`]);
  assert.deepEqual(sysctl.stdout.trim().split('\n'), ['1', '2']);

  for (const [vip, port] of [
    [fixedVip, 80],
    [pooledVip, 8080],
  ] as const) {
    const r = await inNs<{ got?: string; error?: string }>(lan.client.ns, connectJs(vip, port));
    assert.equal(r.got, 'hello from backend', `${vip}:${port} from the client namespace: ${JSON.stringify(r)}`);
  }
  const neigh = await ip(['-n', lan.client.ns, 'neigh', 'show', fixedVip]);
  const edgeMac = (await ip(['-n', lan.edge.ns, 'link', 'show', lan.edge.iface])).match(/link\/ether ([0-9a-f:]+)/)![1]!;
  assert.match(neigh, new RegExp(`lladdr ${edgeMac}`), 'the client learned the VIP at the edge interface MAC');

  const metrics = (await inNs<{ body: string }>(lan.edge.ns, fetchJs('http://127.0.0.1:9470/metrics'))).body;
  assert.match(metrics, new RegExp(`edgeport_vip_owned\\{vip="${fixedVip.replace(/\./g, '\\.')}"\\} 1`));
  assert.match(metrics, /edgeport_arp_replies_total\{interface="epA"\} [1-9]/);
  assert.match(metrics, /edgeport_arp_gratuitous_total\{interface="epA"\} [1-9]/);
  assert.match(metrics, /edgeport_pool_addresses\{pool="lan",state="used"\} 1\n/);
  assert.match(metrics, /edgeport_pool_addresses\{pool="lan",state="free"\} 10\n/);

  const routes = await ip(['-n', lan.edge.ns, 'route', 'show', 'table', 'local', 'proto', '237']);
  assert.match(routes, new RegExp(fixedVip.replace(/\./g, '\\.')));

  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0, first.out());
  assert.equal((await ip(['-n', lan.edge.ns, 'route', 'show', 'table', 'local', 'proto', '237'])).trim(), '', 'routes removed');
  await ip(['-n', lan.client.ns, 'neigh', 'flush', 'dev', lan.client.iface]);
  const gone = await inNs<{ got?: string; error?: string }>(lan.client.ns, connectJs(fixedVip, 80));
  assert.notEqual(gone.got, 'hello from backend', 'nothing answers for the VIP after SIGTERM');

  // Restart: the pool address stays with its service, even with a new service before it.
  writeConfig(
    tmp.dir,
    (await import('node:fs')).readFileSync(config, 'utf8').replace(
      'services:\n',
      `services:\n  - name: newcomer\n    pool: lan\n    ports: [ { port: 9090, protocol: TCP, backends: [ { address: 127.0.0.1, port: 7000 } ] } ]\n`,
    ),
  );
  const second = run();
  await waitReady(second.out);
  const again = await status();
  assert.equal(again.services.find((s) => s.name === 'pooled')!.vip, pooledVip);
  assert.equal(again.services.find((s) => s.name === 'newcomer')!.vip, `${subnet}.101`);
  const r = await inNs<{ got?: string }>(lan.client.ns, connectJs(pooledVip, 8080));
  assert.equal(r.got, 'hello from backend');
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});

test('announce.mode arp refuses to start, exit 1, naming an announce interface that does not exist', { skip }, async () => {
  // (Sysctls that cannot be set: root may always set them, so their refusal message is
  // tested through lb/l2/host.ts in test/integration/l2-netns.test.ts.)
  const tmp = tempDir();
  try {
    const config = writeConfig(
      tmp.dir,
      `announce: { mode: arp, interface: nosuch0 }
admin: { listen: 127.0.0.1:0 }
state: { dir: ${tmp.dir}/state }
services:
  - name: web
    address: 127.0.0.10
    ports: [ { port: 80, protocol: TCP, backends: [ { address: 127.0.0.1, port: 1 } ] } ]
`,
    );
    const child = spawn(BIN, ['run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 1);
    assert.match(err, /nosuch0/);
  } finally {
    tmp.cleanup();
  }
});
