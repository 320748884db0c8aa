import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closest, editDistance, parseConfig, parseDuration } from '../../lb/config/parse.ts';
import { loadConfigFile } from '../../lb/config/load.ts';
import { summarize } from '../../lb/config/summary.ts';
import { ConfigError, EdgeportError } from '../../lb/core/errors.ts';
import type { ConfigProblem } from '../../lb/core/errors.ts';
import type { Config } from '../../lb/core/types.ts';

/** Lines joined with "\n": a line's number is its index + 1. */
const y = (...lines: string[]): string => `${lines.join('\n')}\n`;

function problemsOf(text: string): readonly ConfigProblem[] {
  try {
    parseConfig(text, { hostname: 'host-a' });
  } catch (e) {
    assert.ok(e instanceof ConfigError, `threw ${String(e)}`);
    return e.problems;
  }
  assert.fail('parseConfig accepted the document');
}

const show = (ps: readonly ConfigProblem[]) => ps.map((p) => `${p.path}: ${p.message} (line ${p.line})`).join('\n');

/** The smallest valid document: lines 1..7. */
const MINIMAL = y(
  'announce: {mode: none}',
  'services:',
  '  - name: web',
  '    address: 127.0.0.10',
  '    ports:',
  '      - port: 80',
  '        backends: [{address: 127.0.0.1, port: 8080}]',
);

test('parseConfig gives a minimal config every default of SPEC', () => {
  const cfg = parseConfig(MINIMAL, { hostname: 'host-a' });
  const want: Config = {
    node: { name: 'host-a' },
    announce: { mode: 'none' },
    pools: [],
    defaults: {
      scheduler: 'rr',
      healthCheck: { interval: 2000, timeout: 1000, rise: 2, fall: 3, path: '/healthz' },
      timeouts: { connect: 3000, idle: 3_600_000, udpSession: 30_000, drain: 30_000, halfClosed: 60_000 },
      proxyProtocol: 'none',
      retries: 3,
      limits: { maxConnections: 0, maxUdpSessions: 65536 },
    },
    services: [
      {
        name: 'web',
        address: '127.0.0.10',
        ports: [
          {
            port: 80,
            protocol: 'TCP',
            scheduler: 'rr',
            healthCheck: { type: 'tcp', interval: 2000, timeout: 1000, rise: 2, fall: 3, path: '/healthz' },
            timeouts: { connect: 3000, idle: 3_600_000, udpSession: 30_000, drain: 30_000, halfClosed: 60_000 },
            proxyProtocol: 'none',
            retries: 3,
            limits: { maxConnections: 0, maxUdpSessions: 65536 },
            backends: [{ address: '127.0.0.1', port: 8080, weight: 1 }],
          },
        ],
      },
    ],
    kubernetes: {
      enabled: false,
      nodeHealthCheck: { type: 'http', port: 10256, path: '/healthz' },
      kubeconfig: null,
      loadBalancerClass: 'edgeport.io/lb',
      claimUnclassed: true,
      nodeAddressType: 'InternalIP',
    },
    ha: { enabled: false, leaseNamespace: 'edgeport-system', leaseDuration: 1500, renewInterval: 300, holdDown: 30_000 },
    dataplane: { workers: 'auto', engine: 'epoll' },
    admin: { listen: { host: '127.0.0.1', port: 9470 } },
    state: { dir: '/var/lib/edgeport' },
  };
  assert.deepEqual(cfg, want);
});

test('parseConfig: node.name defaults to the hostname given, else "localhost"', () => {
  assert.equal(parseConfig(MINIMAL, { hostname: 'edge-7' }).node.name, 'edge-7');
  assert.equal(parseConfig(MINIMAL).node.name, 'localhost');
  assert.equal(parseConfig(`node: {name: edge-1}\n${MINIMAL}`, { hostname: 'edge-7' }).node.name, 'edge-1');
});

test('parseConfig: an empty section or value counts as absent', () => {
  const cfg = parseConfig(y('node:', 'defaults:', '  scheduler:', 'kubernetes: ~', MINIMAL), { hostname: 'h' });
  assert.equal(cfg.node.name, 'h');
  assert.equal(cfg.defaults.scheduler, 'rr');
  assert.equal(cfg.kubernetes.enabled, false);
});

test('parseConfig: health check type defaults to tcp for TCP ports, none for UDP ports', () => {
  const cfg = parseConfig(
    y(
      'announce: {mode: none}',
      'services:',
      '  - name: dns',
      '    address: 127.0.0.10',
      '    ports:',
      '      - {port: 53, protocol: UDP, backends: [{address: 127.0.0.1, port: 5353}]}',
      '      - {port: 53, protocol: TCP, backends: [{address: 127.0.0.1, port: 5353}]}',
    ),
  );
  assert.deepEqual(
    cfg.services[0]!.ports.map((p) => [p.protocol, p.healthCheck.type]),
    [
      ['UDP', 'none'],
      ['TCP', 'tcp'],
    ],
  );
});

test('parseConfig merges defaults, then port settings, key by key', () => {
  const cfg = parseConfig(
    y(
      'announce: {mode: none}',
      'defaults:',
      '  scheduler: lc',
      '  healthCheck: {type: http, interval: 5s, path: /ready}',
      '  timeouts: {connect: 1s}',
      '  limits: {maxConnections: 100}',
      '  retries: 1',
      'services:',
      '  - name: web',
      '    address: 127.0.0.10',
      '    ports:',
      '      - port: 80',
      '        healthCheck: {timeout: 500ms, port: 8081}',
      '        timeouts: {idle: 1m30s}',
      '        proxyProtocol: v1',
      '        backends: [{address: 127.0.0.1, port: 8080, weight: 3}]',
      '      - port: 81',
      '        protocol: UDP',
      '        scheduler: sh',
      '        healthCheck: {type: none}',
      '        limits: {maxUdpSessions: 10}',
      '        retries: 0',
      '        backends: [{address: "::1", port: 8080}]',
    ),
  );
  assert.deepEqual(cfg.defaults.healthCheck, { type: 'http', interval: 5000, timeout: 1000, rise: 2, fall: 3, path: '/ready' });
  const [a, b] = cfg.services[0]!.ports;
  assert.deepEqual(a, {
    port: 80,
    protocol: 'TCP',
    scheduler: 'lc',
    healthCheck: { type: 'http', interval: 5000, timeout: 500, rise: 2, fall: 3, port: 8081, path: '/ready' },
    timeouts: { connect: 1000, idle: 90_000, udpSession: 30_000, drain: 30_000, halfClosed: 60_000 },
    proxyProtocol: 'v1',
    retries: 1,
    limits: { maxConnections: 100, maxUdpSessions: 65536 },
    backends: [{ address: '127.0.0.1', port: 8080, weight: 3 }],
  });
  assert.deepEqual(b, {
    port: 81,
    protocol: 'UDP',
    scheduler: 'sh',
    healthCheck: { type: 'none', interval: 5000, timeout: 1000, rise: 2, fall: 3, path: '/ready' },
    timeouts: { connect: 1000, idle: 3_600_000, udpSession: 30_000, drain: 30_000, halfClosed: 60_000 },
    proxyProtocol: 'none',
    retries: 0,
    limits: { maxConnections: 100, maxUdpSessions: 10 },
    backends: [{ address: '::1', port: 8080, weight: 1 }],
  });
});

test('parseConfig reads every other section', () => {
  const cfg = parseConfig(
    y(
      'node: {name: edge-2}',
      'announce: {mode: arp, interface: eth1}',
      'pools:',
      '  - name: lan',
      '    addresses: [192.168.122.90-192.168.122.100, "2001:db8::/120"]',
      '    autoAssign: false',
      '    avoidBuggyIPs: true',
      'kubernetes:',
      '  enabled: true',
      '  nodeHealthCheck: {port: 10257}',
      '  kubeconfig: /etc/edgeport/kubeconfig',
      '  loadBalancerClass: example.com/lb',
      '  claimUnclassed: false',
      '  nodeAddressType: ExternalIP',
      'ha: {enabled: true, leaseNamespace: lb, leaseDuration: 2s, renewInterval: 500ms, holdDown: 0s}',
      'dataplane: {workers: 4, engine: net}',
      'admin: {listen: "[::1]:9471"}',
      'state: {dir: /tmp/edgeport}',
      'services:',
      '  - name: mqtt',
      '    pool: lan',
      '    ports: [{port: 1883, backends: [{address: "2001:DB8:0::11", port: 1883}]}]',
    ),
  );
  assert.equal(cfg.node.name, 'edge-2');
  assert.deepEqual(cfg.announce, { mode: 'arp', interface: 'eth1' });
  assert.deepEqual(cfg.pools, [
    { name: 'lan', addresses: ['192.168.122.90-192.168.122.100', '2001:db8::/120'], autoAssign: false, avoidBuggyIPs: true },
  ]);
  assert.deepEqual(cfg.kubernetes, {
    enabled: true,
    nodeHealthCheck: { type: 'http', port: 10257, path: '/healthz' },
    kubeconfig: '/etc/edgeport/kubeconfig',
    loadBalancerClass: 'example.com/lb',
    claimUnclassed: false,
    nodeAddressType: 'ExternalIP',
  });
  assert.deepEqual(cfg.ha, { enabled: true, leaseNamespace: 'lb', leaseDuration: 2000, renewInterval: 500, holdDown: 0 });
  assert.deepEqual(cfg.dataplane, { workers: 4, engine: 'net' });
  assert.deepEqual(cfg.admin.listen, { host: '::1', port: 9471 });
  assert.deepEqual(cfg.state, { dir: '/tmp/edgeport' });
  assert.equal(cfg.services[0]!.pool, 'lan');
  assert.equal(cfg.services[0]!.address, undefined);
  assert.equal(cfg.services[0]!.ports[0]!.backends[0]!.address, '2001:db8::11', 'addresses are canonical');
});

test('parseConfig honours YAML anchors and merge keys', () => {
  const cfg = parseConfig(
    y(
      'announce: {mode: none}',
      'services:',
      '  - name: a',
      '    address: 127.0.0.10',
      '    ports:',
      '      - &http',
      '        port: 80',
      '        scheduler: wrr',
      '        backends: &be [{address: 127.0.0.1, port: 8080}]',
      '      - <<: *http',
      '        port: 81',
      '        backends: *be',
    ),
  );
  assert.deepEqual(
    cfg.services[0]!.ports.map((p) => [p.port, p.scheduler, p.backends.length]),
    [
      [80, 'wrr', 1],
      [81, 'wrr', 1],
    ],
  );
});

test('parseDuration reads ms, s, m, h and combinations', () => {
  const table: [string, number | undefined][] = [
    ['500ms', 500],
    ['2s', 2000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['1.5s', 1500],
    ['0.1s', 100],
    ['0s', 0],
    ['2', undefined],
    ['-1s', undefined],
    ['1 s', undefined],
    ['2S', undefined],
    ['1d', undefined],
    ['s', undefined],
    ['', undefined],
    ['1.s', undefined],
  ];
  for (const [s, want] of table) assert.equal(parseDuration(s), want, s);
});

test('closest suggests near keys only', () => {
  assert.equal(closest('schedular', ['scheduler', 'retries']), 'scheduler');
  assert.equal(closest('nmae', ['name']), 'name', 'a swap is one edit');
  assert.equal(closest('Scheduler', ['scheduler']), 'scheduler');
  assert.equal(closest('zzz', ['scheduler', 'ha']), undefined);
  assert.equal(closest('a', ['ha']), undefined, 'no guess from one letter');
  assert.equal(editDistance('kitten', 'sitting'), 3);
});

// One problem per document: [description, document, path, line, message fragment].
// Every document differs from a valid one by one mistake, so exactly one problem is expected.
type Case = [string, string, string, number, RegExp];

/** MINIMAL with the port line (6) and backend line (7) replaced. */
const withPort = (portLines: string[]): string => y('announce: {mode: none}', 'services:', '  - name: web', '    address: 127.0.0.10', '    ports:', ...portLines);
const withBackend = (backend: string): string => withPort(['      - port: 80', `        backends: [${backend}]`]);
const withTop = (...lines: string[]): string => MINIMAL + y(...lines);

const CASES: Case[] = [
  // YAML syntax
  ['unclosed flow list (found where it should have ended)', withTop('pools: [', 'x: 1'), 'x', 9, /^Fix the YAML: .*end with a \]/],
  ['tab indentation', withTop('admin:', '\tlisten: 127.0.0.1:1'), 'admin', 9, /^Fix the YAML: .*[Tt]ab/],
  ['two documents', withTop('---', 'a: 1'), '(document)', 8, /one YAML document/],
  ['undefined alias', withTop('state: {dir: *nope}'), 'state.dir', 8, /Define the anchor "&nope"/],
  // unknown keys
  ['unknown top key, close', withTop('schedular: rr'), 'schedular', 8, /^Remove unknown key "schedular"$/],
  ['unknown top key with suggestion', withTop('stat: {dir: /x}'), 'stat', 8, /^Remove unknown key "stat" \(did you mean "state"\?\)$/],
  ['unknown port key', withPort(['      - port: 80', '        shceduler: rr', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].shceduler', 7, /did you mean "scheduler"\?/],
  ['port setting on service', y('announce: {mode: none}', 'services:', '  - name: web', '    scheduler: rr', '    address: 127.0.0.10', '    ports: [{port: 80, backends: [{address: 127.0.0.1, port: 1}]}]'), 'services[0].scheduler', 4, /set "scheduler" on each port, or in defaults/],
  ['quoted odd key', withTop('"a b": 1'), 'services', 0, /./], // placeholder, replaced below
  ['duplicate yaml key at its second occurrence', withTop('admin: {listen: 127.0.0.1:1}', 'admin: {listen: 127.0.0.1:2}'), 'admin', 9, /^Remove the duplicate key "admin" \(first set on line 8\)$/],
  // types
  ['string port', withPort(['      - port: "80"', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].port', 6, /^Use a port in 1\.\.65535, not the string "80" \(remove the quotes\)$/],
  ['list where a map is expected', withTop('admin: []'), 'admin', 8, /^Use a map .*, not a list$/],
  ['map where a list is expected', withTop('pools: {}'), 'pools', 8, /^Use a list .*, not a map$/],
  ['string for a boolean', withTop('kubernetes: {claimUnclassed: "yes"}'), 'kubernetes.claimUnclassed', 8, /^Use true or false, not the string "yes"$/],
  ['float retries', withTop('defaults: {retries: 1.5}'), 'defaults.retries', 8, /^Use an integer in 0\.\.100, not 1\.5$/],
  ['negative maxConnections', withTop('defaults: {limits: {maxConnections: -1}}'), 'defaults.limits.maxConnections', 8, /not -1$/],
  ['rise 0', withTop('defaults: {healthCheck: {rise: 0}}'), 'defaults.healthCheck.rise', 8, /in 1\.\.100, not 0/],
  // ports
  ['port 0', withPort(['      - port: 0', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].port', 6, /^Use a port in 1\.\.65535, not 0$/],
  ['port 65536', withPort(['      - port: 65536', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].port', 6, /not 65536/],
  ['backend port 99999', withBackend('{address: 127.0.0.1, port: 99999}'), 'services[0].ports[0].backends[0].port', 7, /^Use a port in 1\.\.65535, not 99999$/],
  ['healthCheck.port 0', withTop('defaults: {healthCheck: {port: 0}}'), 'defaults.healthCheck.port', 8, /^Use a port in 1\.\.65535, not 0$/],
  ['missing port', withPort(['      - protocol: TCP', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].port', 6, /^Add the required key "port"$/],
  ['empty port value', withPort(['      - port:', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].port', 6, /^Set a value for "port" \(it is required\)$/],
  ['no ports', y('announce: {mode: none}', 'services:', '  - name: web', '    address: 127.0.0.10', '    ports: []'), 'services[0].ports', 5, /^Add at least one port$/],
  ['no backends', withPort(['      - port: 80', '        backends: []']), 'services[0].ports[0].backends', 7, /^Add at least one backend$/],
  ['missing backends', withPort(['      - port: 80']), 'services[0].ports[0].backends', 6, /^Add the required key "backends"$/],
  ['port/protocol twice in a service', withPort(['      - {port: 80, backends: [{address: 127.0.0.1, port: 1}]}', '      - {port: 80, protocol: TCP, backends: [{address: 127.0.0.1, port: 2}]}']), 'services[0].ports[1].port', 7, /^Use another port: 80\/TCP is already used by this service \(services\[0\]\.ports\[0\]\)$/],
  ['port/protocol twice on one fixed VIP across services', y(MINIMAL.trimEnd(), '  - name: api', '    address: 127.0.0.10', '    ports:', '      - port: 80', '        backends: [{address: 127.0.0.1, port: 9}]'), 'services[1].ports[0].port', 11, /80\/TCP on "127\.0\.0\.10" is already used by service "web" \(services\[0\]\.ports\[0\]\)/],
  ['same VIP written differently', y('announce: {mode: none}', 'services:', '  - {name: a, address: "fd00::a", ports: [{port: 80, backends: [{address: "::1", port: 1}]}]}', '  - {name: b, address: "FD00:0::A", ports: [{port: 80, backends: [{address: "::1", port: 1}]}]}'), 'services[1].ports[0].port', 4, /80\/TCP on "fd00::a" is already used by service "a"/],
  // protocol, schedulers, enums
  ['lower-case protocol', withPort(['      - port: 80', '        protocol: tcp', '        backends: [{address: 127.0.0.1, port: 1}]']), 'services[0].ports[0].protocol', 7, /^Use "TCP" or "UDP", not the string "tcp" \(did you mean "TCP"\?\)$/],
  ['unknown scheduler', withTop('defaults: {scheduler: roundrobin}'), 'defaults.scheduler', 8, /^Use "rr", "wrr", "lc" or "sh", not the string "roundrobin"$/],
  ['unknown healthCheck.type', withTop('defaults: {healthCheck: {type: icmp}}'), 'defaults.healthCheck.type', 8, /^Use "tcp", "http" or "none"/],
  ['unknown proxyProtocol', withTop('defaults: {proxyProtocol: v3}'), 'defaults.proxyProtocol', 8, /^Use "none", "v1" or "v2", not the string "v3"/],
  ['unknown announce.mode', 'announce: {mode: bgp}\n' + MINIMAL.slice(MINIMAL.indexOf('\n') + 1), 'announce.mode', 1, /^Use "arp" or "none", not the string "bgp"$/],
  ['unknown nodeAddressType', withTop('kubernetes: {nodeAddressType: internalIP}'), 'kubernetes.nodeAddressType', 8, /did you mean "InternalIP"/],
  // durations
  ['bare number duration', withTop('defaults: {timeouts: {connect: 3}}'), 'defaults.timeouts.connect', 8, /^Add a unit to 3: durations are strings/],
  ['quoted bare number duration', withTop('defaults: {timeouts: {connect: "3"}}'), 'defaults.timeouts.connect', 8, /^Add a unit to "3"/],
  ['negative duration', withTop('defaults: {timeouts: {idle: -5m}}'), 'defaults.timeouts.idle', 8, /^Use a duration above 0, not "-5m"$/],
  ['negative drain', withTop('defaults: {timeouts: {drain: -5m}}'), 'defaults.timeouts.drain', 8, /^Use a duration of 0 or more, not "-5m"$/],
  ['garbage duration', withTop('ha: {holdDown: soon}'), 'ha.holdDown', 8, /^Use a duration such as "500ms", "2s", "5m", "1h" or "1m30s", not "soon"$/],
  ['zero interval', withTop('defaults: {healthCheck: {interval: 0s}}'), 'defaults.healthCheck.interval', 8, /^Use a duration above 0, not "0s"$/],
  ['fractional millisecond', withTop('defaults: {timeouts: {connect: 1.5ms}}'), 'defaults.timeouts.connect', 8, /whole milliseconds/],
  ['too long a duration', withTop('defaults: {timeouts: {idle: 1000h}}'), 'defaults.timeouts.idle', 8, /at most 596h/],
  ['timeout above interval', withTop('defaults: {healthCheck: {timeout: 3s}}'), 'defaults.healthCheck.timeout', 8, /^Set healthCheck\.timeout \(3000ms\) at most healthCheck\.interval \(2000ms\)$/],
  ['renewInterval not below leaseDuration', withTop('ha:', '  leaseDuration: 1s', '  renewInterval: 1s'), 'ha.renewInterval', 10, /^Set ha\.renewInterval \(1000ms\) below ha\.leaseDuration \(1000ms\)$/],
  // addresses
  ['bad VIP', y('announce: {mode: none}', 'services:', '  - name: web', '    address: 127.0.0.256', '    ports: [{port: 80, backends: [{address: 127.0.0.1, port: 1}]}]'), 'services[0].address', 4, /^Use an IPv4 or IPv6 address for the service address, not "127\.0\.0\.256"$/],
  ['multicast VIP', y('announce: {mode: none}', 'services:', '  - name: web', '    address: 224.0.0.1', '    ports: [{port: 80, backends: [{address: 127.0.0.1, port: 1}]}]'), 'services[0].address', 4, /is a multicast address/],
  ['backend host name', withBackend('{address: db.example.com, port: 5432}'), 'services[0].ports[0].backends[0].address', 7, /^Use an IP address for the backend: "db\.example\.com" is a host name, and Edgeport does not resolve names$/],
  ['backend unspecified address', withBackend('{address: 0.0.0.0, port: 1}'), 'services[0].ports[0].backends[0].address', 7, /the unspecified address/],
  ['bracketed IPv6 backend', withBackend('{address: "[::1]", port: 1}'), 'services[0].ports[0].backends[0].address', 7, /^Remove the brackets/],
  ['weight 0', withBackend('{address: 127.0.0.1, port: 1, weight: 0}'), 'services[0].ports[0].backends[0].weight', 7, /^Use a weight in 1\.\.256, not 0$/],
  ['weight 257', withBackend('{address: 127.0.0.1, port: 1, weight: 257}'), 'services[0].ports[0].backends[0].weight', 7, /not 257$/],
  ['duplicate backend at its second occurrence', withBackend('{address: 127.0.0.1, port: 1}, {address: 127.0.0.1, port: 1, weight: 2}'), 'services[0].ports[0].backends[1]', 7, /^Remove the duplicate backend "127\.0\.0\.1:1" \(also services\[0\]\.ports\[0\]\.backends\[0\]\)$/],
  // pools
  ['range that ends before it starts', withTop('pools:', '  - name: p', '    addresses:', '      - 10.0.0.9-10.0.0.1'), 'pools[0].addresses[0]', 11, /^"10\.0\.0\.9-10\.0\.0\.1" ends before it starts$/],
  ['CIDR with host bits', withTop('pools:', '  - name: p', '    addresses: [10.0.0.5/24]'), 'pools[0].addresses[0]', 10, /^Use "10\.0\.0\.0\/24": "10\.0\.0\.5\/24" has host bits set$/],
  ['CIDR with a bad prefix', withTop('pools:', '  - name: p', '    addresses: [10.0.0.0/40]'), 'pools[0].addresses[0]', 10, /prefix length in 0\.\.32/],
  ['pool entry not a string', withTop('pools:', '  - name: p', '    addresses: [10]'), 'pools[0].addresses[0]', 10, /^Use a string, not 10$/],
  ['pool with no addresses', withTop('pools:', '  - name: p', '    addresses: []'), 'pools[0].addresses', 10, /^Add at least one address range or CIDR$/],
  ['pool without addresses', withTop('pools:', '  - name: p'), 'pools[0].addresses', 9, /^Add the required key "addresses"$/],
  ['pool left empty by avoidBuggyIPs', withTop('pools:', '  - name: p', '    avoidBuggyIPs: true', '    addresses: [10.0.0.255/32, 10.0.1.0]'), 'pools[0].addresses', 11, /^Add usable addresses: avoidBuggyIPs leaves none/],
  ['overlapping pools', withTop('pools:', '  - {name: a, addresses: [10.0.0.0/24]}', '  - {name: b, addresses: [10.0.1.0/24, 10.0.0.128-10.0.0.130]}'), 'pools[1].addresses[1]', 10, /^Remove the overlap: "10\.0\.0\.128-10\.0\.0\.130" overlaps "10\.0\.0\.0\/24" of pool "a" \(pools\[0\]\.addresses\[0\]\)$/],
  ['overlap inside a pool', withTop('pools:', '  - {name: a, addresses: [10.0.0.0/24, 10.0.0.7]}'), 'pools[0].addresses[1]', 9, /overlaps "10\.0\.0\.0\/24" also in this pool/],
  ['duplicate pool name at its second occurrence', withTop('pools:', '  - {name: a, addresses: [10.0.0.0/24]}', '  - {name: a, addresses: [10.0.1.0/24]}'), 'pools[1].name', 10, /^Use another name: pool "a" is already defined \(pools\[0\]\)$/],
  ['bad pool name', withTop('pools:', '  - {name: "my pool", addresses: [10.0.0.0/24]}'), 'pools[0].name', 9, /letters, digits/],
  // services
  ['duplicate service name at its second occurrence', y(MINIMAL.trimEnd(), '  - name: web', '    address: 127.0.0.11', '    ports: [{port: 80, backends: [{address: 127.0.0.1, port: 1}]}]'), 'services[1].name', 8, /^Use another name: service "web" is already defined \(services\[0\]\)$/],
  ['address and pool', withTop('pools: [{name: p, addresses: [10.0.0.0/24]}]').replace('    address: 127.0.0.10\n', '    address: 127.0.0.10\n    pool: p\n'), 'services[0].pool', 5, /^Remove "pool" or "address"/],
  ['neither address nor pool', MINIMAL.replace('    address: 127.0.0.10\n', ''), 'services[0].address', 3, /^Add "address" \(a fixed VIP\) or "pool"/],
  ['undefined pool', withTop('pools: [{name: default, addresses: [10.0.0.0/24]}]').replace('    address: 127.0.0.10\n', '    pool: defualt\n'), 'services[0].pool', 4, /^Define pool "defualt" under "pools", or name a defined one \(defined: "default"; did you mean "default"\?\)$/],
  ['missing service name', MINIMAL.replace('  - name: web\n    address', '  - address'), 'services[0].name', 3, /^Add the required key "name"$/],
  // other sections
  ['arp without interface', MINIMAL.replace('announce: {mode: none}', 'announce: {mode: arp}'), 'announce.interface', 1, /^Add "interface" .* required when announce\.mode is "arp"$/],
  ['default arp without interface', MINIMAL.replace('announce: {mode: none}\n', ''), 'announce.interface', 1, /or set announce\.mode to "none": mode "arp" is the default$/],
  ['ha without kubernetes', withTop('ha: {enabled: true}'), 'ha.enabled', 8, /^Set kubernetes\.enabled to true, or ha\.enabled to false/],
  ['bad lease namespace', withTop('ha: {leaseNamespace: Edge_Port}'), 'ha.leaseNamespace', 8, /Kubernetes namespace name/],
  ['workers 0', withTop('dataplane: {workers: 0}'), 'dataplane.workers', 8, /^Use a worker count in 1\.\.1024, not 0$/],
  ['engine unknown', withTop('dataplane: {engine: uring}'), 'dataplane.engine', 8, /raw.*net/],
  ['workers "many"', withTop('dataplane: {workers: many}'), 'dataplane.workers', 8, /^Use "auto" or a worker count in 1\.\.1024, not the string "many"$/],
  ['admin.listen without a port', withTop('admin: {listen: 127.0.0.1}'), 'admin.listen', 8, /^Add a port: use "host:port"/],
  ['admin.listen IPv6 without brackets', withTop('admin: {listen: "::1:9470"}'), 'admin.listen', 8, /^Put an IPv6 address in brackets, as in "\[::1\]:9470"/],
  ['admin.listen port out of range', withTop('admin: {listen: "127.0.0.1:70000"}'), 'admin.listen', 8, /^Use a port in 0\.\.65535 after the host, not "70000"$/],
  ['admin.listen without a host', withTop('admin: {listen: ":9470"}'), 'admin.listen', 8, /^Add a host before the port/],
  ['healthCheck.path without a slash', withTop('defaults: {healthCheck: {path: healthz}}'), 'defaults.healthCheck.path', 8, /^Start the path with "\/": "healthz"$/],
];
// A key that is not a plain word is quoted in the path.
CASES[CASES.findIndex((c) => c[0] === 'quoted odd key')] = ['quoted odd key', withTop('"a b": 1'), '["a b"]', 8, /^Remove unknown key "a b"$/];

for (const [desc, text, path, line, message] of CASES) {
  test(`parseConfig reports ${desc} at ${path}, line ${line}`, () => {
    const ps = problemsOf(text);
    assert.equal(ps.length, 1, `expected one problem, got:\n${show(ps)}`);
    assert.equal(ps[0]!.path, path, show(ps));
    assert.equal(ps[0]!.line, line, show(ps));
    assert.match(ps[0]!.message, message, show(ps));
  });
}

test('parseConfig accepts port/protocol pairs that differ on one fixed VIP, and one port on two VIPs', () => {
  const cfg = parseConfig(
    y(
      'announce: {mode: none}',
      'services:',
      '  - {name: a, address: 127.0.0.10, ports: [{port: 53, protocol: UDP, backends: [{address: 127.0.0.1, port: 1}]}]}',
      '  - {name: b, address: 127.0.0.10, ports: [{port: 53, protocol: TCP, backends: [{address: 127.0.0.1, port: 1}]}]}',
      '  - {name: c, address: 127.0.0.11, ports: [{port: 53, protocol: TCP, backends: [{address: 127.0.0.1, port: 1}]}]}',
      '  - {name: d, pool: p, ports: [{port: 53, protocol: TCP, backends: [{address: 127.0.0.1, port: 1}]}]}',
      '  - {name: e, pool: p, ports: [{port: 53, protocol: TCP, backends: [{address: 127.0.0.1, port: 1}]}]}',
      'pools: [{name: p, addresses: [127.0.1.0/24]}]',
    ),
  );
  assert.deepEqual(
    cfg.services.map((s) => s.name),
    ['a', 'b', 'c', 'd', 'e'],
  );
});

test('parseConfig tells an overlap with another pool of the same name from one inside a pool', () => {
  const ps = problemsOf(withTop('pools:', '  - {name: a, addresses: [10.0.0.0/24]}', '  - {name: a, addresses: [10.0.0.1]}'));
  assert.deepEqual(
    ps.map((p) => [p.path, p.line, p.message]),
    [
      ['pools[1].addresses[0]', 10, 'Remove the overlap: "10.0.0.1" overlaps "10.0.0.0/24" of pool "a" (pools[0].addresses[0])'],
      ['pools[1].name', 10, 'Use another name: pool "a" is already defined (pools[0])'],
    ],
  );
});

test('parseConfig reports every problem at once, in line order', () => {
  const ps = problemsOf(
    y(
      'announce: {mode: none}', // 1
      'pools:', // 2
      '  - {name: p, addresses: [10.0.0.9-10.0.0.1]}', // 3: range
      'services:', // 4
      '  - name: web', // 5
      '    address: 127.0.0.10', // 6
      '    ports:', // 7
      '      - port: 0', // 8: port
      '        protocol: udp', // 9: protocol
      '        backends: [{address: db, port: 1, weight: 0}]', // 10: host name, weight
      'admin: {listn: 127.0.0.1:1}', // 11: unknown key
    ),
  );
  assert.deepEqual(
    ps.map((p) => [p.path, p.line]),
    [
      ['pools[0].addresses[0]', 3],
      ['services[0].ports[0].port', 8],
      ['services[0].ports[0].protocol', 9],
      ['services[0].ports[0].backends[0].address', 10],
      ['services[0].ports[0].backends[0].weight', 10],
      ['admin.listn', 11],
    ],
    show(ps),
  );
  assert.match(ps[5]!.message, /did you mean "listen"\?/);
});

test('parseConfig lists every YAML syntax error with its line', () => {
  const ps = problemsOf(y('announce: {mode: none', 'pools:', '  - name: "unterminated', 'services: [}'));
  assert.ok(ps.length >= 2, show(ps));
  for (const p of ps) {
    assert.match(p.message, /^Fix the YAML: /);
    assert.ok(p.line >= 1 && p.line <= 5, show(ps));
  }
});

test('parseConfig reports an empty document, and a document that is not a map', () => {
  for (const text of ['', '\n\n', '# nothing yet\n', '~\n']) {
    assert.deepEqual(problemsOf(text).map((p) => [p.path, p.line]), [['(document)', 1]], JSON.stringify(text));
    assert.match(problemsOf(text)[0]!.message, /document is empty/);
  }
  assert.match(problemsOf('- a\n- b\n')[0]!.message, /^Use a map of settings .* not a list$/);
  assert.match(problemsOf('42\n')[0]!.message, /not 42$/);
});

test('parseConfig throws ConfigError carrying the file name', () => {
  assert.throws(
    () => parseConfig('x: 1\n', { file: '/etc/edgeport/config.yaml' }),
    (e: unknown) => e instanceof ConfigError && e.file === '/etc/edgeport/config.yaml' && e.code === 'EDGEPORT_ERR_CONFIG_INVALID' && /^Cannot load configuration "\/etc\/edgeport\/config\.yaml": 2 problems/.test(e.message),
  );
});

test('parseConfig survives hostile YAML with ConfigError only', () => {
  const nasty = [
    'a: &a [*a]',
    'services: &s [*s]',
    '? [a, b]\n: c',
    '!!binary aGVsbG8=',
    'services: !!set {a, b}',
    '%YAML 1.1\n---\nservices: !!omap [a: 1]',
    'node: {name: !!timestamp 2001-12-14}',
    '<<: 5',
    `${'['.repeat(5000)}`,
    'a: ' + '&x '.repeat(3) + '1',
    // a billion laughs
    'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  ];
  for (const text of nasty) {
    const ps = problemsOf(text);
    assert.ok(ps.length > 0);
    for (const p of ps) {
      assert.ok(p.path.length > 0 && p.line >= 1 && p.message.length > 0, JSON.stringify(p));
      assert.doesNotMatch(p.message, /internal error/, JSON.stringify(p));
    }
  }
});

test('config/example.yaml is valid and uses every key', () => {
  const text = readFileSync(new URL('../../config/example.yaml', import.meta.url), 'utf8');
  const cfg = parseConfig(text, { hostname: 'ignored' });
  assert.equal(cfg.node.name, 'edge-1');
  assert.deepEqual(cfg.announce, { mode: 'arp', interface: 'eth0' });
  const keys = [
    'node:', 'name:', 'announce:', 'mode:', 'interface:', 'pools:', 'addresses:', 'autoAssign:', 'avoidBuggyIPs:',
    'defaults:', 'scheduler:', 'healthCheck:', 'type:', 'interval:', 'timeout:', 'rise:', 'fall:', 'port:', 'path:',
    'timeouts:', 'connect:', 'idle:', 'udpSession:', 'drain:', 'proxyProtocol:', 'retries:', 'limits:', 'maxConnections:',
    'maxUdpSessions:', 'services:', 'address:', 'pool:', 'ports:', 'protocol:', 'backends:', 'weight:', 'kubernetes:',
    'enabled:', 'nodeHealthCheck:', 'kubeconfig:', 'loadBalancerClass:', 'claimUnclassed:', 'nodeAddressType:', 'ha:',
    'leaseNamespace:', 'leaseDuration:', 'renewInterval:', 'holdDown:', 'dataplane:', 'workers:', 'admin:', 'listen:', 'state:', 'dir:',
  ];
  const uncommented = text.split('\n').map((l) => l.replace(/#.*/, '')).join('\n');
  for (const k of keys) assert.ok(new RegExp(`(^|[\\s{,])${k}`).test(uncommented), `example.yaml lacks ${k}`);
});

test('summarize lists pools with sizes and services with VIP or pool, ports, scheduler, backends', () => {
  const text = readFileSync(new URL('../../config/example.yaml', import.meta.url), 'utf8');
  const out = summarize(parseConfig(text));
  assert.match(out, /^node edge-1: announce arp on eth0, kubernetes off, ha off\n/);
  assert.match(out, /\n {2}default {3}27 addresses {2}192\.168\.122\.90-192\.168\.122\.100, 10\.20\.0\.0\/28\n/);
  assert.match(out, /\n {2}reserved {2}20 addresses .*\(on request only, avoids \.0\/\.255\)\n/);
  assert.match(out, /\n {2}web {3}192\.168\.122\.95 {2}80\/TCP wrr 2 backends, 443\/TCP sh 2 backends\n/);
  assert.match(out, /\n {2}dns {3}192\.168\.122\.95 {2}53\/UDP lc 2 backends, 53\/TCP rr 2 backends\n/);
  assert.match(out, /\n {2}mqtt {2}pool default {4}1883\/TCP rr 2 backends\n$/);
  assert.equal(summarize(parseConfig('announce: {mode: none}\n')), 'node localhost: announce none, kubernetes off, ha off\npools: none\nservices: none\n');
});

test('loadConfigFile reads the file, names it in ConfigError, and refuses a missing file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeport-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, MINIMAL);
  assert.equal(loadConfigFile(good).services[0]!.name, 'web');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'nope: 1\n');
  assert.throws(() => loadConfigFile(bad), (e: unknown) => e instanceof ConfigError && e.file === bad && e.message.startsWith(`Cannot load configuration "${bad}"`));
  const missing = join(dir, 'missing.yaml');
  assert.throws(
    () => loadConfigFile(missing),
    (e: unknown) => e instanceof EdgeportError && e.code === 'EDGEPORT_ERR_CONFIG_READ' && e.message === `Cannot read configuration "${missing}": no such file`,
  );
});
