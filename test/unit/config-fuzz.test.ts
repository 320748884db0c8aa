// Randomized: mutate valid documents thousands of times; parseConfig must return a Config
// that keeps the configuration's invariants, or throw ConfigError whose every problem has a
// path, a line inside the document and a message. Reproducible: the PRNG is seeded, the seed is
// printed on failure, and EDGEPORT_FUZZ_SEED=<n> replays a run.

import { prng } from '../support/prng.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../lb/config/parse.ts';
import { ConfigError } from '../../lb/core/errors.ts';
import type { Config } from '../../lb/core/types.ts';
import { backendKey, listenerKey } from '../../lb/core/types.ts';
import { parsePoolEntry } from '../../lb/ipam/address.ts';

const SEED = Number(process.env['EDGEPORT_FUZZ_SEED'] ?? 0x5eed2024);


/** [name, document, mutated copies]: the big example costs most, so it gets fewer. */
const SEEDS: [string, string, number][] = [
  ['example.yaml', readFileSync(new URL('../../config/example.yaml', import.meta.url), 'utf8'), 600],
  [
    'minimal',
    [
      'announce: {mode: none}',
      'services:',
      '  - name: web',
      '    address: 127.0.0.10',
      '    ports:',
      '      - port: 80',
      '        backends: [{address: 127.0.0.1, port: 8080}]',
      '',
    ].join('\n'),
    600,
  ],
  [
    'services sharing a VIP',
    [
      'announce: {mode: none}',
      'pools: [{name: p, addresses: [127.0.1.0/24]}]',
      'services:',
      '  - name: a',
      '    address: 127.0.0.10',
      '    ports:',
      '      - {port: 80, protocol: TCP, backends: [{address: 127.0.0.1, port: 1}]}',
      '      - {port: 53, protocol: UDP, backends: [{address: 127.0.0.1, port: 2}]}',
      '  - name: b',
      '    address: 127.0.0.10',
      '    ports:',
      '      - {port: 53, protocol: TCP, backends: [{address: 127.0.0.1, port: 3}]}',
      '  - name: c',
      '    address: 127.0.0.11',
      '    ports:',
      '      - {port: 80, protocol: TCP, backends: [{address: 127.0.0.1, port: 4}]}',
      '  - name: d',
      '    pool: p',
      '    ports:',
      '      - {port: 80, protocol: TCP, backends: [{address: 127.0.0.2, port: 4}]}',
      '',
    ].join('\n'),
    900,
  ],
  [
    'block style, pools, ha',
    [
      'node:',
      '  name: edge-2',
      'announce:',
      '  mode: arp',
      '  interface: eth1',
      'pools:',
      '  - name: lan',
      '    addresses:',
      '      - 10.1.0.0/24',
      '      - "fd00::10-fd00::20"',
      '    avoidBuggyIPs: true',
      '  - name: dmz',
      '    addresses:',
      '      - 10.2.0.5-10.2.0.9',
      '    autoAssign: false',
      'defaults:',
      '  scheduler: wrr',
      '  healthCheck:',
      '    type: http',
      '    interval: 1m30s',
      '    timeout: 500ms',
      '  retries: 2',
      'services:',
      '  - name: a',
      '    pool: lan',
      '    ports:',
      '      - port: 443',
      '        protocol: TCP',
      '        proxyProtocol: v2',
      '        backends:',
      '          - address: 10.0.0.1',
      '            port: 8443',
      '            weight: 5',
      '          - address: "fd00::1"',
      '            port: 8443',
      '      - port: 53',
      '        protocol: UDP',
      '        timeouts:',
      '          udpSession: 10s',
      '        backends:',
      '          - address: 10.0.0.2',
      '            port: 53',
      'kubernetes:',
      '  enabled: true',
      '  kubeconfig: /etc/k.yaml',
      'ha:',
      '  enabled: true',
      '  leaseDuration: 2s',
      '  renewInterval: 400ms',
      'dataplane:',
      '  workers: 2',
      'admin:',
      '  listen: "[::1]:9470"',
      'state:',
      '  dir: /tmp/x',
      '',
    ].join('\n'),
    900,
  ],
];

const NASTY = [
  '', '-1', '0', '99999', '65536', 'abc', '[]', '{}', '~', 'null', '1.5', '1e400', '.inf', '.nan', '0x50', '0o17',
  '10.0.0.1-10.0.0.0', '10.0.0.5/24', '10.0.0.0/33', '::1', '"::1"', '[::1]:1', ':::', '1::2::3', '0.0.0.0',
  '255.255.255.255', 'true', 'false', 'yes', 'TCP', 'udp', 'rr', 'wrr', 'sh', 'lc', 'none', 'arp', 'http', 'v1',
  '500ms', '1m30s', '-5s', '0s', '2', '"2s"', 'x'.repeat(300), '"\u00e9\u00e8\u{1F600}"', 'ü', '\t', 'a\tb', '&a',
  '*a', '&a x', '*nope', '!!binary aGk=', '!!str 1', '!!int x', '!foo bar', '? x', '- x', '[a, b', '{a: 1', '"unterminated',
  "'single", '|', '>', '|\n  text', '#', ': x', 'a: b: c', '<<: *a', '%YAML 1.1', '---', '...', '@', '`', '"\\x"',
  'auto', '127.0.0.1:9470', '[a: 1]', '{? a}', '!!set {a}', '!!omap [a: 1]', '2001-12-14', 'null: 1', '"":', '\\',
  '&a [*a]', '&a {x: *a}', '[{}]', '[[]]', '[~]', '{address: 127.0.0.1, port: 1}', '[{address: 127.0.0.1, port: 1}]',
];

const KEYS = [
  'node', 'name', 'announce', 'mode', 'interface', 'pools', 'addresses', 'autoAssign', 'avoidBuggyIPs', 'defaults',
  'scheduler', 'healthCheck', 'type', 'interval', 'timeout', 'rise', 'fall', 'port', 'path', 'timeouts', 'connect',
  'idle', 'udpSession', 'drain', 'proxyProtocol', 'retries', 'limits', 'maxConnections', 'maxUdpSessions', 'services',
  'address', 'pool', 'ports', 'protocol', 'backends', 'weight', 'kubernetes', 'enabled', 'ha', 'leaseDuration',
  'renewInterval', 'holdDown', 'dataplane', 'workers', 'admin', 'listen', 'state', 'dir', 'schedular', 'Port', '<<',
];

type Mutation = (lines: string[], r: () => number) => string[];

const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)]!;
const at = (lines: string[], r: () => number) => Math.floor(r() * lines.length);

const MUTATIONS: [string, Mutation][] = [
  ['delete a line', (ls, r) => ls.toSpliced(at(ls, r), 1)],
  ['duplicate a line', (ls, r) => {
    const i = at(ls, r);
    return ls.toSpliced(i, 0, ls[i]!);
  }],
  ['swap two lines', (ls, r) => {
    const out = [...ls];
    const i = at(ls, r);
    const j = at(ls, r);
    [out[i], out[j]] = [out[j]!, out[i]!];
    return out;
  }],
  ['change indentation', (ls, r) => {
    const out = [...ls];
    const i = at(ls, r);
    const body = out[i]!.trimStart();
    const indent = out[i]!.length - body.length;
    const next = Math.max(0, indent + pick([-4, -2, -1, 1, 2, 4], r));
    out[i] = (r() < 0.1 ? '\t' : ' '.repeat(next)) + body;
    return out;
  }],
  ['replace a value', (ls, r) => {
    const out = [...ls];
    const i = at(ls, r);
    const tok = pick(NASTY, r);
    const line = out[i]!;
    // After "key:" (block or flow), or after "- ".
    const candidates = [...line.matchAll(/(:\s+|-\s+|[[{,]\s*)([^,{}[\]#\n]+)/g)];
    if (candidates.length === 0) {
      out[i] = `${line} ${tok}`;
      return out;
    }
    const m = pick(candidates, r);
    const start = m.index! + m[1]!.length;
    out[i] = line.slice(0, start) + tok + line.slice(start + m[2]!.length);
    return out;
  }],
  ['replace everything after "key:"', (ls, r) => {
    const out = [...ls];
    const i = at(ls, r);
    out[i] = out[i]!.replace(/^(\s*(?:- )?[A-Za-z<]+:).*$/, `$1 ${pick(NASTY, r)}`);
    return out;
  }],
  ['copy a value from elsewhere in the document', (ls, r) => {
    // Makes names, ports and addresses collide: duplicates and clashes.
    const values = ls.flatMap((l) => [...l.matchAll(/:\s+([^,{}[\]#\s]+)/g)].map((m) => m[1]!));
    if (values.length === 0) return ls;
    const out = [...ls];
    const i = at(ls, r);
    const candidates = [...out[i]!.matchAll(/(:\s+)([^,{}[\]#\s]+)/g)];
    if (candidates.length === 0) return out;
    const m = pick(candidates, r);
    const start = m.index! + m[1]!.length;
    out[i] = out[i]!.slice(0, start) + pick(values, r) + out[i]!.slice(start + m[2]!.length);
    return out;
  }],
  ['give a key the value it has elsewhere', (ls, r) => {
    // Two names, addresses or ports become equal: duplicates and VIP clashes.
    const occ = ls.flatMap((l, i) => [...l.matchAll(/([A-Za-z]+)(:\s+)([^,{}[\]#\s]+)/g)].map((m) => ({ i, key: m[1]!, start: m.index! + m[1]!.length + m[2]!.length, value: m[3]! })));
    if (occ.length === 0) return ls;
    const target = pick(occ, r);
    const same = occ.filter((o) => o.key === target.key && o.value !== target.value);
    if (same.length === 0) return ls;
    const out = [...ls];
    const line = out[target.i]!;
    out[target.i] = line.slice(0, target.start) + pick(same, r).value + line.slice(target.start + target.value.length);
    return out;
  }],
  ['empty a flow collection', (ls, r) => {
    const out = [...ls];
    const i = at(ls, r);
    out[i] = r() < 0.5 ? out[i]!.replace(/\[[^[\]]*\]/, '[]') : out[i]!.replace(/\{[^{}]*\}/, '{}');
    return out;
  }],
  ['replace a key', (ls, r) => {
    const out = [...ls];
    const i = at(ls, r);
    out[i] = out[i]!.replace(/[A-Za-z]+(?=\s*:)/, r() < 0.7 ? pick(KEYS, r) : pick(NASTY, r));
    return out;
  }],
  ['insert a line', (ls, r) => {
    const i = at(ls, r);
    const indent = ' '.repeat(Math.floor(r() * 4) * 2);
    const line = r() < 0.5 ? `${indent}${pick(KEYS, r)}: ${pick(NASTY, r)}` : `${indent}${pick(NASTY, r)}`;
    return ls.toSpliced(i, 0, line);
  }],
  ['truncate', (ls, r) => {
    const text = ls.join('\n');
    return text.slice(0, Math.floor(r() * text.length)).split('\n');
  }],
  ['insert a character', (ls, r) => {
    const text = ls.join('\n');
    const i = Math.floor(r() * (text.length + 1));
    return (text.slice(0, i) + pick([':', '-', '[', ']', '{', '}', '"', "'", '#', '&', '*', '!', '|', '>', '\t', ' ', '\n', ',', '?', '%', '@', '\0', '\r'], r) + text.slice(i)).split('\n');
  }],
];

/** What every accepted Config must satisfy. */
function checkInvariants(cfg: Config): void {
  const pools = new Set(cfg.pools.map((p) => p.name));
  assert.equal(pools.size, cfg.pools.length, 'pool names are unique');
  for (const p of cfg.pools) {
    assert.ok(p.addresses.length > 0, `pool ${p.name} has addresses`);
    for (const a of p.addresses) assert.ok(parsePoolEntry(a).ok, `pool entry ${a} parses`);
  }
  assert.equal(new Set(cfg.services.map((s) => s.name)).size, cfg.services.length, 'service names are unique');
  const listeners = new Set<string>();
  for (const s of cfg.services) {
    assert.ok((s.address === undefined) !== (s.pool === undefined), `${s.name}: exactly one of address and pool`);
    if (s.pool !== undefined) assert.ok(pools.has(s.pool), `${s.name}: pool ${s.pool} is defined`);
    assert.ok(s.ports.length > 0, `${s.name} has ports`);
    const own = s.ports.map((p) => `${p.port}/${p.protocol}`);
    assert.equal(new Set(own).size, own.length, `${s.name}: port/protocol pairs are unique`);
    for (const p of s.ports) {
      const ids = p.backends.map((b) => backendKey(b.address, b.port));
      assert.equal(new Set(ids).size, ids.length, `${s.name}:${p.port}: backends are unique`);
      assert.ok(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535);
      assert.ok(p.protocol === 'TCP' || p.protocol === 'UDP');
      assert.ok(['rr', 'wrr', 'lc', 'sh'].includes(p.scheduler));
      assert.ok(p.backends.length > 0, `${s.name}:${p.port} has backends`);
      for (const b of p.backends) {
        assert.ok(Number.isInteger(b.port) && b.port >= 1 && b.port <= 65535);
        assert.ok(Number.isInteger(b.weight) && b.weight >= 1 && b.weight <= 256);
      }
      for (const d of [p.healthCheck.interval, p.healthCheck.timeout, p.timeouts.connect, p.timeouts.idle, p.timeouts.udpSession]) {
        assert.ok(Number.isInteger(d) && d > 0, `duration ${d}`);
      }
      if (s.address !== undefined) {
        const key = listenerKey(s.address, p.port, p.protocol);
        assert.ok(!listeners.has(key), `${key} used once`);
        listeners.add(key);
      }
    }
  }
  assert.ok(cfg.ha.renewInterval < cfg.ha.leaseDuration);
  assert.ok(cfg.announce.mode === 'none' || (cfg.announce.interface ?? '') !== '');
  assert.ok(cfg.node.name.length > 0);
}

const TOTAL = SEEDS.reduce((n, s) => n + s[2], 0);

test(`parseConfig returns a valid Config or throws ConfigError for ${TOTAL} mutated documents (seed ${SEED})`, () => {
  const r = prng(SEED);
  const stats = { accepted: 0, rejected: 0 };
  for (const [seedName, seedText, cases] of SEEDS) {
    // The seeds themselves are valid: otherwise most mutations test nothing.
    checkInvariants(parseConfig(seedText));
    for (let n = 0; n < cases; n++) {
      let lines = seedText.split('\n');
      const applied: string[] = [];
      const count = pick([1, 1, 1, 2, 2, 3], r);
      for (let k = 0; k < count; k++) {
        const [name, mutate] = pick(MUTATIONS, r);
        applied.push(name);
        lines = mutate(lines, r);
        if (lines.length === 0) lines = [''];
      }
      const text = lines.join('\n');
      const where = () =>
        `seed ${SEED} (EDGEPORT_FUZZ_SEED=${SEED}), ${seedName} case ${n}, mutations: ${applied.join(', ')}\n--- document ---\n${text}\n---`;
      let cfg: Config | undefined;
      try {
        cfg = parseConfig(text, { hostname: 'fuzz' });
      } catch (e) {
        if (!(e instanceof ConfigError)) assert.fail(`threw ${e instanceof Error ? e.stack : String(e)}\n${where()}`);
        const maxLine = text.split(/\r\n|\r|\n/).length + 1;
        assert.ok(e.problems.length > 0, `no problems\n${where()}`);
        for (const p of e.problems) {
          const ok =
            typeof p.path === 'string' && p.path.length > 0 &&
            Number.isInteger(p.line) && p.line >= 1 && p.line <= maxLine &&
            typeof p.message === 'string' && p.message.length > 0 && !/internal error/.test(p.message);
          if (!ok) assert.fail(`bad problem ${JSON.stringify(p)} (max line ${maxLine})\n${where()}`);
        }
        stats.rejected++;
        continue;
      }
      try {
        checkInvariants(cfg);
      } catch (e) {
        assert.fail(`accepted a Config that breaks an invariant: ${e instanceof Error ? e.message : String(e)}\n${where()}`);
      }
      stats.accepted++;
    }
  }
  // Both outcomes must occur, or the mutations are too weak (or too strong) to test anything.
  assert.ok(stats.accepted > 100 && stats.rejected > 100, JSON.stringify(stats));
});
