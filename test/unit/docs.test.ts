// The operator documentation cannot drift from the code: README's configuration reference
// against the parser (every key it knows, each documented default and example), the example
// configuration, the Grafana dashboard against lb/metrics/metrics.ts, and the README's shape.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMap, isScalar, isSeq, parseDocument, parse as parseYaml, stringify } from 'yaml';
import { parseConfig } from '../../lb/config/parse.ts';
import { ROOT } from '../support/proc.ts';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const PARSE_TS = readFileSync(join(ROOT, 'lb/config/parse.ts'), 'utf8');

/** The text of the `## title` section, up to the next `## `. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "## ${title}" section`);
  const next = README.indexOf('\n## ', start + 1);
  return README.slice(start, next < 0 ? undefined : next);
}

interface Row {
  key: string;
  def: string;
  example: string;
}

function referenceRows(): Row[] {
  const rows: Row[] = [];
  for (const line of section('Configuration reference').split('\n')) {
    const m = /^\| `([^`]+)` \| (.*?) \| (.*?) \| (.*) \|$/.exec(line);
    if (m) rows.push({ key: m[1]!, def: m[2]!, example: m[3]! });
  }
  return rows;
}

/** The value of a cell that is exactly one code span, parsed as YAML; undefined for prose. */
function codeValue(cell: string): { value: unknown } | undefined {
  const m = /^`([^`]+)`$/.exec(cell.trim());
  return m ? { value: parseYaml(m[1]!) as unknown } : undefined;
}

/**
 * Where each *_KEYS array of lb/config/parse.ts lives in the document. An array the parser
 * gains without an entry here fails the test: add it, and its keys to the README.
 */
const KEY_ARRAY_PATHS: Record<string, string> = {
  TOP_KEYS: '',
  NODE_KEYS: 'node',
  ANNOUNCE_KEYS: 'announce',
  POOL_KEYS: 'pools[]',
  SETTINGS_KEYS: 'defaults',
  HEALTH_KEYS: 'defaults.healthCheck',
  TIMEOUT_KEYS: 'defaults.timeouts',
  LIMIT_KEYS: 'defaults.limits',
  SERVICE_KEYS: 'services[]',
  PORT_KEYS: 'services[].ports[]',
  BACKEND_KEYS: 'services[].ports[].backends[]',
  K8S_KEYS: 'kubernetes',
  NODE_HC_KEYS: 'kubernetes.nodeHealthCheck',
  HA_KEYS: 'ha',
  DATAPLANE_KEYS: 'dataplane',
  ADMIN_KEYS: 'admin',
  STATE_KEYS: 'state',
};

/** The keys of each *_KEYS array, read from the parser's source (spreads resolved). */
function parserKeyArrays(): Map<string, string[]> {
  const raw = new Map<string, string>();
  for (const m of PARSE_TS.matchAll(/^const ([A-Z0-9_]+_KEYS) = \[([^\]]*)\];/gm)) raw.set(m[1]!, m[2]!);
  const out = new Map<string, string[]>();
  const resolve = (name: string): string[] => {
    const body = raw.get(name);
    assert.ok(body !== undefined, `lb/config/parse.ts defines ${name}`);
    return body
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean)
      .flatMap((t) => (t.startsWith('...') ? resolve(t.slice(3)) : [/^'([^']+)'$/.exec(t)?.[1] ?? assert.fail(`cannot read ${t} in ${name}`)]));
  };
  for (const name of raw.keys()) out.set(name, resolve(name));
  return out;
}

function join2(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

/** Every key path the parser accepts, as the reference table writes them. */
function parserPaths(): string[] {
  const arrays = parserKeyArrays();
  assert.ok(arrays.size >= 10, `found the *_KEYS arrays in lb/config/parse.ts (${arrays.size})`);
  const out: string[] = [];
  for (const [name, keys] of arrays) {
    const prefix = KEY_ARRAY_PATHS[name];
    assert.ok(prefix !== undefined, `${name} (lb/config/parse.ts) has no place in KEY_ARRAY_PATHS of test/unit/docs.test.ts: add it, and document its keys in README's configuration reference`);
    for (const k of keys) out.push(join2(prefix, k));
  }
  return out;
}

// A small valid configuration that the checks below change one key at a time.
function base(): Record<string, unknown> {
  return {
    announce: { mode: 'none' },
    pools: [{ name: 'default', addresses: ['10.99.0.0/29'] }],
    services: [{ name: 's', address: '127.0.0.10', ports: [{ port: 80, backends: [{ address: '127.0.0.1', port: 8080 }] }] }],
  };
}

/** Keys some values need set (or removed) around them to make a valid whole. */
const CONTEXT: Record<string, Record<string, unknown>> = {
  'announce.mode': { 'announce.interface': 'eth0' },
  'services[].pool': { 'services[].address': undefined },
  'ha.enabled': { 'kubernetes.enabled': true },
};

/** Sets (or, with undefined, deletes) a dotted path with `[]` meaning the first item. */
function setPath(doc: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node: Record<string, unknown> = doc;
  parts.forEach((part, i) => {
    const list = part.endsWith('[]');
    const key = list ? part.slice(0, -2) : part;
    const last = i === parts.length - 1;
    if (list) {
      if (!Array.isArray(node[key])) node[key] = [{}];
      const arr = node[key] as Record<string, unknown>[];
      if (last) throw new Error(`cannot set a list item: ${path}`);
      node = arr[0]!;
      return;
    }
    if (last) {
      if (value === undefined) delete node[key];
      else node[key] = value;
      return;
    }
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
}

function parseObject(doc: Record<string, unknown>) {
  return parseConfig(stringify(doc), { hostname: 'docs-test' });
}

function withContext(key: string): Record<string, unknown> {
  const doc = base();
  for (const [k, v] of Object.entries(CONTEXT[key] ?? {})) setPath(doc, k, v);
  setPath(doc, key, undefined);
  return doc;
}

test('README configuration reference: every key the parser knows is listed, and only those', () => {
  const rows = referenceRows();
  assert.ok(rows.length >= 50, `rows found: ${rows.length}`);
  const listed = rows.map((r) => r.key);
  assert.equal(new Set(listed).size, listed.length, 'no key listed twice');
  const known = parserPaths();
  // A section (pools, defaults.healthCheck) is covered by the rows of its keys.
  const covered = (p: string) => listed.some((k) => k === p || k.startsWith(`${p}.`) || k.startsWith(`${p}[]`));
  const missing = known.filter((p) => !covered(p));
  assert.deepEqual(missing, [], 'keys the parser knows that README does not list');
  const unknown = listed.filter((k) => !known.includes(k));
  assert.deepEqual(unknown, [], 'keys README lists that the parser does not know');
});

test('README configuration reference: each default in code is the parser default, each example is accepted', () => {
  let defaults = 0;
  for (const row of referenceRows()) {
    const def = codeValue(row.def);
    if (def) {
      defaults++;
      const without = withContext(row.key);
      const withDefault = withContext(row.key);
      setPath(withDefault, row.key, def.value);
      assert.deepEqual(parseObject(withDefault), parseObject(without), `${row.key}: setting the documented default ${row.def} changes nothing`);
    }
    const ex = codeValue(row.example);
    assert.ok(ex, `${row.key}: the example is one code span: ${row.example}`);
    const doc = withContext(row.key);
    setPath(doc, row.key, ex.value);
    assert.doesNotThrow(() => parseObject(doc), `${row.key}: the example ${row.example} is accepted`);
  }
  assert.ok(defaults >= 35, `defaults checked: ${defaults}`);
});

test('config/example.yaml is valid, and every key it shows is in the README reference', () => {
  const text = readFileSync(join(ROOT, 'config/example.yaml'), 'utf8');
  parseConfig(text, { hostname: 'docs-test' });
  const listed = referenceRows().map((r) => r.key);
  const paths = new Set<string>();
  const walk = (node: unknown, path: string) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        const p = join2(path, key);
        paths.add(p);
        walk(pair.value, p);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) walk(item, `${path}[]`);
    }
  };
  walk(parseDocument(text).contents, '');
  // A key is documented by its own row, or by a row of an enclosing key (port-level overrides).
  const documented = (p: string) => listed.some((k) => p === k || p.startsWith(`${k}.`) || k.startsWith(`${p}.`) || k.startsWith(`${p}[]`));
  assert.deepEqual([...paths].filter((p) => !documented(p)), []);
  assert.ok(paths.size >= 40, `keys seen in the example: ${paths.size}`);
});

test('the reference check fails on a key the parser does not know, and on a wrong default', () => {
  // The checks above must be able to fail: a made-up key is refused, a wrong default differs.
  assert.throws(() => parseObject({ ...base(), defaults: { schedular: 'rr' } }), /schedular/);
  const wrong = withContext('defaults.retries');
  setPath(wrong, 'defaults.retries', 4);
  assert.notDeepEqual(parseObject(wrong), parseObject(withContext('defaults.retries')));
});

// ---------------------------------------------------------------------------------------
// Grafana

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

test('config/grafana-dashboard.json parses, and every metric it queries exists in lb/metrics/metrics.ts', () => {
  const dash = JSON.parse(readFileSync(join(ROOT, 'config/grafana-dashboard.json'), 'utf8')) as { title: string; uid: string; panels: Panel[]; templating: { list: { query?: unknown }[] } };
  assert.equal(dash.title, 'Edgeport');
  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const exprs = [
    ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ...dash.templating.list.map((v) => JSON.stringify(v.query ?? '')),
  ];
  assert.ok(exprs.length >= 15);
  const queried = new Set(exprs.flatMap((e) => [...e.matchAll(/\bedgeport_[a-z_]+/g)].map((m) => m[0])));
  const defined = new Set([...readFileSync(join(ROOT, 'lb/metrics/metrics.ts'), 'utf8').matchAll(/name: '(edgeport_[a-z_]+)'/g)].map((m) => m[1]!));
  assert.ok(defined.size >= 14, `metrics found in lb/metrics/metrics.ts: ${defined.size}`);
  assert.deepEqual([...queried].filter((m) => !defined.has(m)), [], 'queried metrics that Edgeport does not export');
  for (const m of [
    'edgeport_connections_total',
    'edgeport_active_connections',
    'edgeport_bytes_total',
    'edgeport_backend_up',
    'edgeport_connect_failures_total',
    'edgeport_udp_sessions_active',
    'edgeport_config_reloads_total',
    'edgeport_pool_addresses',
    'edgeport_arp_requests_total',
    'edgeport_arp_replies_total',
    'edgeport_arp_gratuitous_total',
    'edgeport_arp_conflicts_total',
    'edgeport_vip_owned',
  ]) {
    assert.ok(queried.has(m), `a panel shows ${m}`);
  }
  // Every panel has a title and a unique grid position.
  const seen = new Set<string>();
  for (const p of panels) {
    assert.ok(p.title, `panel of type ${p.type} has a title`);
    const pos = JSON.stringify((p as unknown as { gridPos: unknown }).gridPos);
    assert.ok(!seen.has(pos), `panel "${p.title}" overlaps another at ${pos}`);
    seen.add(pos);
  }
});

// ---------------------------------------------------------------------------------------
// README shape

test('README: the quick start comes first, then the operator sections', () => {
  const firstHeading = /\n## (.+)\n/.exec(README)![1];
  assert.equal(firstHeading, 'Quick start');
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(README)![1]!;
  assert.deepEqual(firstBlock.trim().split('\n'), ['npm ci && npm start', 'npm test']);
  for (const title of [
    'When to use Edgeport (vs MetalLB, kube-vip, HAProxy, keepalived)',
    'Installation on an edge host',
    'Running it as a service',
    'Kubernetes setup',
    'docker-compose lab',
    'Configuration reference',
    'Grafana',
    'Troubleshooting',
  ]) {
    section(title);
  }
  const trouble = section('Troubleshooting');
  for (const cmd of ['edgeport status', 'kubectl describe svc', 'curl -s 127.0.0.1:9470/metrics', 'arping', 'ip route show table local proto 237', 'sysctl net.ipv4.conf']) {
    assert.ok(trouble.includes(cmd), `Troubleshooting shows \`${cmd}\``);
  }
  for (const problem of ['<pending>', 'ARP not answered', 'not receiving traffic', 'Conflicts']) assert.ok(trouble.includes(problem), problem);
  assert.match(section('Kubernetes setup'), /config\/rbac\.yaml/);
});
