// The configuration file: YAML text -> Config, every default resolved. Pure: no I/O.
//
// parseConfig lists every problem at once (ConfigError.problems), each with a field path in
// bracket-index form ("services[1].ports[0].port"), an action-first message with quoted values
// and the 1-based line of the offending node (for a missing key: the line of the map that
// lacks it). A duplicate is reported at its second occurrence. Whatever the input, it returns
// a Config or throws ConfigError, nothing else.
//
// Decisions where SPEC is silent (see also config/example.yaml):
// - YAML syntax errors are all listed, and then validation stops: checking a half-parsed
//   document would only add noise.
// - A key present with an empty value (`scheduler:` or `~`) counts as absent: the default
//   applies. For a required key that is a problem ("Set a value ...").
// - weight is an integer in 1..256 (HAProxy's range). 0 ("drain") is refused: to drain a
//   backend, remove it; a reload keeps established connections (SPEC, SIGHUP).
// - announce.mode defaults to arp (the example's value), so announce.interface is required
//   unless mode is none.
// - Names of pools and services: 1..63 of [A-Za-z0-9._-]; they become metrics labels,
//   annotation values and keys in state.dir.
// - A pool entry may also be a single address (a one-address range).
// - Addresses are stored in canonical form (IPv6 lower case, "::" compressed), so that
//   "2001:DB8::1" and "2001:db8:0::1" are one VIP, one backend identity.
// - admin.listen accepts port 0 (any free port; for tests) and a host name for the host.
// - YAML merge keys (`<<: *anchor`) are honoured; explicit keys win over merged ones.

import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { ConfigError } from '../core/errors.ts';
import type { ConfigProblem } from '../core/errors.ts';
import { listenerKey } from '../core/types.ts';
import type {
  BackendSpec,
  Config,
  Defaults,
  HaSpec,
  HealthCheckSpec,
  HealthCheckType,
  KubernetesSpec,
  Limits,
  PoolSpec,
  PortSpec,
  Protocol,
  ProxyProtocol,
  SchedulerName,
  ServiceSpec,
  TcpEngine,
  Timeouts,
} from '../core/types.ts';
import { canonicalIp, formatRange, parseIp, parsePoolEntry, poolSize, rangesOverlap } from '../ipam/address.ts';
import type { IpRange } from '../ipam/address.ts';

export interface ParseOptions {
  /** Named in the ConfigError. */
  file?: string;
  /** The default of node.name (the loader passes os.hostname()). */
  hostname?: string;
}

// ---------------------------------------------------------------------------------------
// Defaults (SPEC "Configuration file (YAML)")

export const SCHEDULERS: readonly SchedulerName[] = ['rr', 'wrr', 'lc', 'sh'];
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP'];
export const PROXY_PROTOCOLS: readonly ProxyProtocol[] = ['none', 'v1', 'v2'];
export const HEALTH_CHECK_TYPES: readonly HealthCheckType[] = ['tcp', 'http', 'none'];
export const TCP_ENGINES: readonly TcpEngine[] = ['epoll', 'raw', 'net'];
export const NODE_ADDRESS_TYPES: readonly string[] = ['InternalIP', 'ExternalIP', 'Hostname'];
export const MAX_WEIGHT = 256;
/** Node's timers hold at most 2^31-1 ms. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export function builtinDefaults(): Defaults {
  return {
    scheduler: 'rr',
    healthCheck: { interval: 2000, timeout: 1000, rise: 2, fall: 3, path: '/healthz' },
    timeouts: { connect: 3000, idle: 3_600_000, udpSession: 30_000, drain: 30_000, halfClosed: 60_000 },
    proxyProtocol: 'none',
    retries: 3,
    limits: { maxConnections: 0, maxUdpSessions: 65536 },
  };
}

function builtinKubernetes(): KubernetesSpec {
  return {
    enabled: false,
    nodeHealthCheck: { type: 'http', port: 10256, path: '/healthz' },
    kubeconfig: null,
    loadBalancerClass: 'edgeport.io/lb',
    claimUnclassed: true,
    nodeAddressType: 'InternalIP',
  };
}

function builtinHa(): HaSpec {
  return { enabled: false, leaseNamespace: 'edgeport-system', leaseDuration: 1500, renewInterval: 300, holdDown: 30_000 };
}

// Keys of each map, for unknown-key checks.
const TOP_KEYS = ['node', 'announce', 'pools', 'defaults', 'services', 'kubernetes', 'ha', 'dataplane', 'admin', 'state'];
const NODE_KEYS = ['name'];
const ANNOUNCE_KEYS = ['mode', 'interface'];
const POOL_KEYS = ['name', 'addresses', 'autoAssign', 'avoidBuggyIPs'];
const SETTINGS_KEYS = ['scheduler', 'healthCheck', 'timeouts', 'proxyProtocol', 'retries', 'limits'];
const HEALTH_KEYS = ['type', 'interval', 'timeout', 'rise', 'fall', 'port', 'path'];
const TIMEOUT_KEYS = ['connect', 'idle', 'udpSession', 'drain', 'halfClosed'];
const LIMIT_KEYS = ['maxConnections', 'maxUdpSessions'];
const SERVICE_KEYS = ['name', 'address', 'pool', 'ports'];
const PORT_KEYS = ['port', 'protocol', 'backends', ...SETTINGS_KEYS];
const BACKEND_KEYS = ['address', 'port', 'weight'];
const K8S_KEYS = ['enabled', 'nodeHealthCheck', 'kubeconfig', 'loadBalancerClass', 'claimUnclassed', 'nodeAddressType'];
const NODE_HC_KEYS = ['type', 'port', 'path'];
const HA_KEYS = ['enabled', 'leaseNamespace', 'leaseDuration', 'renewInterval', 'holdDown'];
const DATAPLANE_KEYS = ['workers', 'engine'];
const ADMIN_KEYS = ['listen'];
const STATE_KEYS = ['dir'];

// ---------------------------------------------------------------------------------------
// A plain tree of the document, each node with its path and line.

interface YBase {
  path: string;
  line: number;
}
interface YScalar extends YBase {
  kind: 'scalar';
  value: unknown;
}
interface YMap extends YBase {
  kind: 'map';
  entries: Map<string, YNode>;
  keyLines: Map<string, number>;
}
interface YSeq extends YBase {
  kind: 'seq';
  items: YNode[];
}
type YNode = YScalar | YMap | YSeq;

/** Field path of a child: "a.b", "a[0]", and quoted keys that are not plain words. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

/** Text of any scalar value, never throwing (symbols, buffers, dates included). */
function textOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'symbol') return v.description ?? '';
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return Object.prototype.toString.call(v);
}

/** How a value reads in a message: `the string "80"`, `1.5`, `a list`. */
function describe(n: YNode): string {
  if (n.kind === 'map') return 'a map';
  if (n.kind === 'seq') return 'a list';
  const v = n.value;
  if (v === null || v === undefined) return 'an empty value';
  if (typeof v === 'string') return `the string ${quote(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return `a ${Object.prototype.toString.call(v).slice(8, -1)} value`;
}

function quote(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 80 ? `${q.slice(0, 60)}..."` : q;
}

function orList(values: readonly string[]): string {
  const q = values.map((v) => `"${v}"`);
  return q.length === 1 ? q[0]! : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known word closest to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === word.toLowerCase() ? 0.5 : editDistance(word, k);
    const limit = k.length <= 3 ? 1 : 2;
    if (d <= limit && d < Math.min(k.length, word.length) && d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

class Problems {
  readonly list: ConfigProblem[] = [];
  add(path: string, line: number, message: string): void {
    this.list.push({ path: path === '' ? '(document)' : path, line: Number.isInteger(line) && line >= 1 ? line : 1, message });
  }
}

/** Turns the yaml AST into YNodes: resolves aliases and merge keys, reports duplicate keys. */
class Converter {
  private readonly doc: Document;
  private readonly lc: LineCounter;
  private readonly ps: Problems;
  private budget = 200_000;
  private readonly resolving = new Set<unknown>();

  constructor(doc: Document, lc: LineCounter, ps: Problems) {
    this.doc = doc;
    this.lc = lc;
    this.ps = ps;
  }

  lineOf(node: unknown, fallback: number): number {
    const r = (node as { range?: unknown } | null)?.range;
    if (Array.isArray(r) && typeof r[0] === 'number') return this.lc.linePos(r[0]).line;
    return fallback;
  }

  convert(node: unknown, path: string, fallbackLine: number, depth = 0): YNode {
    const line = this.lineOf(node, fallbackLine);
    if (--this.budget < 0 || depth > 200) {
      if (this.budget === -1 || depth === 201) this.ps.add(path, line, 'Simplify the document: its aliases or nesting expand too far');
      return { kind: 'scalar', value: null, path, line };
    }
    if (node === null || node === undefined) return { kind: 'scalar', value: null, path, line };
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) {
        this.ps.add(path, line, `Define the anchor "&${node.source}" before the alias "*${node.source}"`);
        return { kind: 'scalar', value: null, path, line };
      }
      if (this.resolving.has(target)) {
        this.ps.add(path, line, `Remove the alias "*${node.source}": it refers to itself`);
        return { kind: 'scalar', value: null, path, line };
      }
      this.resolving.add(target);
      try {
        const out = this.convert(target, path, line, depth + 1);
        out.line = line; // report at the alias, where the value is used
        return out;
      } finally {
        this.resolving.delete(target);
      }
    }
    if (isScalar(node)) return { kind: 'scalar', value: node.value, path, line };
    if (isMap(node)) {
      const out: YMap = { kind: 'map', entries: new Map(), keyLines: new Map(), path, line };
      const merged: YMap[] = [];
      for (const pair of node.items) {
        const keyNode: unknown = pair.key;
        const keyLine = this.lineOf(keyNode, line);
        if (isScalar(keyNode) && typeof keyNode.value === 'symbol' && keyNode.value.description === '<<') {
          const v = this.convert(pair.value, childPath(path, '<<'), keyLine, depth + 1);
          const sources = v.kind === 'seq' ? v.items : [v];
          for (const s of sources) {
            if (s.kind === 'map') merged.push(s);
            else this.ps.add(s.path, s.line, `Merge a map with "<<", not ${describe(s)}`);
          }
          continue;
        }
        let key: string;
        if (isScalar(keyNode) && keyNode.value !== null && typeof keyNode.value !== 'object') {
          key = textOf(keyNode.value);
        } else {
          const what = keyNode === null || keyNode === undefined || (isScalar(keyNode) && keyNode.value === null) ? 'an empty key' : 'a complex key';
          this.ps.add(path, keyLine, `Use a plain word as a key, not ${what}`);
          continue;
        }
        const p = childPath(path, key);
        if (out.entries.has(key)) {
          this.ps.add(p, keyLine, `Remove the duplicate key "${key}" (first set on line ${out.keyLines.get(key)})`);
          continue;
        }
        const value = this.convert(pair.value, p, keyLine, depth + 1);
        if (value.kind === 'scalar' && value.value === null) value.line = keyLine;
        out.entries.set(key, value);
        out.keyLines.set(key, keyLine);
      }
      for (const m of merged) {
        for (const [k, v] of m.entries) {
          if (out.entries.has(k)) continue;
          out.entries.set(k, rebase(v, childPath(path, k)));
          out.keyLines.set(k, m.keyLines.get(k) ?? line);
        }
      }
      return out;
    }
    if (isSeq(node)) {
      const out: YSeq = { kind: 'seq', items: [], path, line };
      node.items.forEach((item: unknown, i: number) => {
        const p = childPath(path, i);
        if (isPair(item)) {
          this.ps.add(p, this.lineOf(item.key, line), 'Use a list item or a map, not an ordered-map pair');
          out.items.push({ kind: 'scalar', value: null, path: p, line });
          return;
        }
        out.items.push(this.convert(item, p, line, depth + 1));
      });
      return out;
    }
    return { kind: 'scalar', value: null, path, line };
  }
}

/** A copy of a (merged) subtree with paths under its new place. */
function rebase(n: YNode, path: string): YNode {
  if (n.kind === 'scalar') return { ...n, path };
  if (n.kind === 'seq') return { ...n, path, items: n.items.map((it, i) => rebase(it, childPath(path, i))) };
  const entries = new Map<string, YNode>();
  for (const [k, v] of n.entries) entries.set(k, rebase(v, childPath(path, k)));
  return { ...n, path, entries };
}

/** The path of the deepest yaml node around `offset`, for syntax errors. */
function pathAt(node: unknown, offset: number, path: string, depth = 0): string {
  if (depth > 100) return path;
  const within = (n: unknown): boolean => {
    const r = (n as { range?: unknown } | null)?.range;
    return Array.isArray(r) && typeof r[0] === 'number' && typeof r[2] === 'number' && r[0] <= offset && offset < Math.max(r[2], r[0] + 1);
  };
  if (isMap(node)) {
    // The pair that holds the offset, or else the last pair that starts before it (a tab
    // after "admin:" belongs to admin).
    let last: string | undefined;
    for (const pair of node.items) {
      const k: unknown = pair.key;
      const key = isScalar(k) ? textOf(k.value) : '?';
      if (within(k)) return childPath(path, key);
      if (within(pair.value)) return pathAt(pair.value, offset, childPath(path, key), depth + 1);
      const start = (k as { range?: unknown } | null)?.range;
      if (Array.isArray(start) && typeof start[0] === 'number' && start[0] <= offset) last = key;
    }
    if (last !== undefined && within(node)) return childPath(path, last);
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++) {
      const item: unknown = node.items[i];
      if (within(item)) return pathAt(item, offset, childPath(path, i), depth + 1);
    }
  }
  return path;
}

// ---------------------------------------------------------------------------------------
// Typed readers. Each reports a problem and returns undefined when the value is unusable, so
// that the caller falls back to a default and goes on collecting problems.

function toText(n: YNode): string | undefined {
  return n.kind === 'scalar' && typeof n.value === 'string' ? n.value : undefined;
}

class Reader {
  readonly ps: Problems;
  constructor(ps: Problems) {
    this.ps = ps;
  }

  add(n: { path: string; line: number }, message: string): void {
    this.ps.add(n.path, n.line, message);
  }

  /** Reports keys of `m` not in `known`, with a "did you mean" when one is close. */
  known(m: YMap, known: readonly string[], hints: Record<string, string> = {}): void {
    for (const key of m.entries.keys()) {
      if (known.includes(key)) continue;
      const near = closest(key, known);
      const hint = Object.hasOwn(hints, key) ? ` (${hints[key]})` : near ? ` (did you mean "${near}"?)` : '';
      this.ps.add(childPath(m.path, key), m.keyLines.get(key) ?? m.line, `Remove unknown key ${quote(key)}${hint}`);
    }
  }

  /** The value of `key`, undefined when absent or empty (null). */
  value(m: YMap | undefined, key: string): YNode | undefined {
    const v = m?.entries.get(key);
    if (!v || (v.kind === 'scalar' && (v.value === null || v.value === undefined))) return undefined;
    return v;
  }

  /** Like value(), reporting a missing or empty required key. */
  required(m: YMap, key: string): YNode | undefined {
    const v = this.value(m, key);
    if (v) return v;
    const present = m.entries.get(key);
    if (present) this.add(present, `Set a value for "${key}" (it is required)`);
    else this.ps.add(childPath(m.path, key), m.line, `Add the required key "${key}"`);
    return undefined;
  }

  /** A map section: undefined when absent or empty, reported when not a map. */
  map(n: YNode | undefined, known: readonly string[], hints?: Record<string, string>): YMap | undefined {
    if (!n) return undefined;
    if (n.kind !== 'map') {
      this.add(n, `Use a map (key: value lines or { ... }), not ${describe(n)}`);
      return undefined;
    }
    this.known(n, known, hints);
    return n;
  }

  list(n: YNode | undefined): YNode[] | undefined {
    if (!n) return undefined;
    if (n.kind !== 'seq') {
      this.add(n, `Use a list ("- item" lines or [ ... ]), not ${describe(n)}`);
      return undefined;
    }
    return n.items;
  }

  str(n: YNode | undefined): string | undefined {
    if (!n) return undefined;
    const s = toText(n);
    if (s === undefined) {
      this.add(n, `Use a string, not ${describe(n)}`);
      return undefined;
    }
    if (s.trim() === '') {
      this.add(n, 'Use a non-empty string');
      return undefined;
    }
    return s;
  }

  /** A string without white space or control characters. */
  word(n: YNode | undefined, what: string): string | undefined {
    const s = this.str(n);
    if (s === undefined) return undefined;
    if (/[\s\p{Cc}]/u.test(s)) {
      this.add(n!, `Remove the spaces or control characters from ${what} ${quote(s)}`);
      return undefined;
    }
    return s;
  }

  name(n: YNode | undefined, what: string): string | undefined {
    const s = this.str(n);
    if (s === undefined) return undefined;
    if (!/^[A-Za-z0-9._-]{1,63}$/.test(s)) {
      this.add(n!, `Use 1 to 63 letters, digits, ".", "_" or "-" for the ${what} name, not ${quote(s)}`);
      return undefined;
    }
    return s;
  }

  bool(n: YNode | undefined): boolean | undefined {
    if (!n) return undefined;
    if (n.kind === 'scalar' && typeof n.value === 'boolean') return n.value;
    this.add(n, `Use true or false, not ${describe(n)}`);
    return undefined;
  }

  int(n: YNode | undefined, min: number, max: number, what = 'an integer'): number | undefined {
    if (!n) return undefined;
    const v = n.kind === 'scalar' ? n.value : undefined;
    if (typeof v !== 'number') {
      const s = n.kind === 'scalar' && typeof v === 'string' && /^-?[0-9]+$/.test(v.trim()) ? ' (remove the quotes)' : '';
      this.add(n, `Use ${what} in ${min}..${max}, not ${describe(n)}${s}`);
      return undefined;
    }
    if (!Number.isInteger(v) || v < min || v > max) {
      this.add(n, `Use ${what} in ${min}..${max}, not ${describe(n)}`);
      return undefined;
    }
    return v;
  }

  port(n: YNode | undefined): number | undefined {
    return this.int(n, 1, 65535, 'a port');
  }

  oneOf<T extends string>(n: YNode | undefined, allowed: readonly T[]): T | undefined {
    if (!n) return undefined;
    const s = toText(n);
    if (s !== undefined && (allowed as readonly string[]).includes(s)) return s as T;
    const near = s !== undefined ? closest(s, allowed) : undefined;
    this.add(n, `Use ${orList(allowed)}, not ${describe(n)}${near ? ` (did you mean "${near}"?)` : ''}`);
    return undefined;
  }

  duration(n: YNode | undefined, min: number): number | undefined {
    if (!n) return undefined;
    const v = n.kind === 'scalar' ? n.value : undefined;
    const example = '"500ms", "2s", "5m", "1h" or "1m30s"';
    if (typeof v === 'number') {
      this.add(n, `Add a unit to ${v}: durations are strings such as ${example}`);
      return undefined;
    }
    if (typeof v !== 'string') {
      this.add(n, `Use a duration such as ${example}, not ${describe(n)}`);
      return undefined;
    }
    const ms = parseDuration(v);
    if (ms === undefined) {
      if (/^\s*-/.test(v)) this.add(n, `Use a duration ${min === 0 ? 'of 0 or more' : 'above 0'}, not ${quote(v)}`);
      else if (/^\s*[0-9]+(\.[0-9]+)?\s*$/.test(v)) this.add(n, `Add a unit to ${quote(v)}: durations are strings such as ${example}`);
      else this.add(n, `Use a duration such as ${example}, not ${quote(v)}`);
      return undefined;
    }
    if (!Number.isInteger(ms)) {
      this.add(n, `Use whole milliseconds: ${quote(v)} is ${ms}ms`);
      return undefined;
    }
    if (ms > MAX_DURATION_MS) {
      this.add(n, `Use a duration of at most 596h, not ${quote(v)}`);
      return undefined;
    }
    if (ms < min) {
      this.add(n, min === 1 ? `Use a duration above 0, not ${quote(v)}` : `Use a duration of at least ${min}ms, not ${quote(v)}`);
      return undefined;
    }
    return ms;
  }

  /** An IP literal in canonical form; hostnames are refused (Edgeport does not resolve). */
  ip(n: YNode | undefined, what: string): string | undefined {
    const s = this.str(n);
    if (s === undefined) return undefined;
    const canon = canonicalIp(s);
    if (canon === undefined) {
      if (/^\[.*\]$/.test(s)) this.add(n!, `Remove the brackets from ${quote(s)}: use a bare IPv6 address`);
      else if (s.includes('%')) this.add(n!, `Remove the zone from ${quote(s)}: link-local zones are not supported`);
      else if (/^(?=.*[A-Za-z])[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(s) && !/^[0-9A-Fa-f:.]+$/.test(s)) {
        this.add(n!, `Use an IP address for the ${what}: ${quote(s)} is a host name, and Edgeport does not resolve names`);
      } else this.add(n!, `Use an IPv4 or IPv6 address for the ${what}, not ${quote(s)}`);
      return undefined;
    }
    const a = parseIp(canon)!;
    const special =
      a.value === 0n ? 'the unspecified address'
      : a.family === 4 && a.value >> 28n === 0xen ? 'a multicast address'
      : a.family === 6 && a.value >> 120n === 0xffn ? 'a multicast address'
      : a.family === 4 && a.value === 0xffffffffn ? 'the broadcast address'
      : undefined;
    if (special) {
      this.add(n!, `Use a unicast address for the ${what}: ${quote(s)} is ${special}`);
      return undefined;
    }
    return canon;
  }
}

/** "500ms", "2s", "5m", "1h", "1m30s", "1.5s" -> milliseconds; undefined when malformed. */
export function parseDuration(s: string): number | undefined {
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(s)) return undefined;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]!]!;
  // Round away float noise ("0.1s" -> 100), keep true fractions of a millisecond visible.
  const rounded = Math.round(total * 1000) / 1000;
  return Number.isFinite(rounded) ? rounded : undefined;
}

// ---------------------------------------------------------------------------------------
// Sections

interface PoolInfo {
  spec: PoolSpec;
  index: number;
  ranges: IpRange[];
}

/** Scheduler, health check, timeouts, proxy protocol, retries and limits over `base`. */
function readSettings(r: Reader, m: YMap | undefined, base: Defaults): Defaults {
  const hcMap = r.map(r.value(m, 'healthCheck'), HEALTH_KEYS);
  const hc: Defaults['healthCheck'] = { ...base.healthCheck };
  const type = r.oneOf(r.value(hcMap, 'type'), HEALTH_CHECK_TYPES);
  if (type) hc.type = type;
  const interval = r.duration(r.value(hcMap, 'interval'), 1);
  if (interval !== undefined) hc.interval = interval;
  const timeout = r.duration(r.value(hcMap, 'timeout'), 1);
  if (timeout !== undefined) hc.timeout = timeout;
  const rise = r.int(r.value(hcMap, 'rise'), 1, 100);
  if (rise !== undefined) hc.rise = rise;
  const fall = r.int(r.value(hcMap, 'fall'), 1, 100);
  if (fall !== undefined) hc.fall = fall;
  const hcPort = r.port(r.value(hcMap, 'port'));
  if (hcPort !== undefined) hc.port = hcPort;
  const pathNode = r.value(hcMap, 'path');
  const path = r.word(pathNode, 'the path');
  if (path !== undefined) {
    if (path.startsWith('/')) hc.path = path;
    else r.add(pathNode!, `Start the path with "/": ${quote(path)}`);
  }
  if (hcMap && (interval !== undefined || timeout !== undefined) && hc.timeout > hc.interval) {
    const at = timeout !== undefined ? r.value(hcMap, 'timeout')! : r.value(hcMap, 'interval')!;
    r.add(at, `Set healthCheck.timeout (${hc.timeout}ms) at most healthCheck.interval (${hc.interval}ms)`);
  }

  const tMap = r.map(r.value(m, 'timeouts'), TIMEOUT_KEYS);
  const timeouts: Timeouts = { ...base.timeouts };
  const connect = r.duration(r.value(tMap, 'connect'), 1);
  if (connect !== undefined) timeouts.connect = connect;
  const idle = r.duration(r.value(tMap, 'idle'), 1);
  if (idle !== undefined) timeouts.idle = idle;
  const udp = r.duration(r.value(tMap, 'udpSession'), 1);
  if (udp !== undefined) timeouts.udpSession = udp;
  const drain = r.duration(r.value(tMap, 'drain'), 0);
  if (drain !== undefined) timeouts.drain = drain;
  const halfClosed = r.duration(r.value(tMap, 'halfClosed'), 1);
  if (halfClosed !== undefined) timeouts.halfClosed = halfClosed;

  const lMap = r.map(r.value(m, 'limits'), LIMIT_KEYS);
  const limits: Limits = { ...base.limits };
  const maxC = r.int(r.value(lMap, 'maxConnections'), 0, Number.MAX_SAFE_INTEGER);
  if (maxC !== undefined) limits.maxConnections = maxC;
  const maxU = r.int(r.value(lMap, 'maxUdpSessions'), 0, Number.MAX_SAFE_INTEGER);
  if (maxU !== undefined) limits.maxUdpSessions = maxU;

  return {
    scheduler: r.oneOf(r.value(m, 'scheduler'), SCHEDULERS) ?? base.scheduler,
    healthCheck: hc,
    timeouts,
    proxyProtocol: r.oneOf(r.value(m, 'proxyProtocol'), PROXY_PROTOCOLS) ?? base.proxyProtocol,
    retries: r.int(r.value(m, 'retries'), 0, 100) ?? base.retries,
    limits,
  };
}

function readPools(r: Reader, n: YNode | undefined): Map<string, PoolInfo> {
  const pools = new Map<string, PoolInfo>();
  const seen: { range: IpRange; text: string; path: string; pool: string; index: number }[] = [];
  (r.list(n) ?? []).forEach((item, i) => {
    const m = r.map(item, POOL_KEYS);
    if (!m) return;
    const nameNode = r.required(m, 'name');
    const name = r.name(nameNode, 'pool');
    const spec: PoolSpec = {
      name: name ?? `#${i}`,
      addresses: [],
      autoAssign: r.bool(r.value(m, 'autoAssign')) ?? true,
      avoidBuggyIPs: r.bool(r.value(m, 'avoidBuggyIPs')) ?? false,
    };
    const ranges: IpRange[] = [];
    const addrNode = r.required(m, 'addresses');
    const entries = r.list(addrNode);
    let allParsed = entries !== undefined;
    entries?.forEach((e) => {
      const text = r.str(e);
      if (text === undefined) {
        allParsed = false;
        return;
      }
      const res = parsePoolEntry(text);
      if (!res.ok) {
        r.add(e, res.message);
        allParsed = false;
        return;
      }
      spec.addresses.push(text);
      const clash = seen.find((s) => rangesOverlap(s.range, res.range));
      if (clash) {
        const where = clash.index === i ? `also in this pool (${clash.path})` : `of pool "${clash.pool}" (${clash.path})`;
        r.add(e, `Remove the overlap: ${quote(text)} overlaps ${quote(clash.text)} ${where}`);
      }
      seen.push({ range: res.range, text, path: e.path, pool: spec.name, index: i });
      ranges.push(res.range);
    });
    if (entries && entries.length === 0) r.add(addrNode!, 'Add at least one address range or CIDR');
    else if (entries && allParsed && poolSize(ranges, spec.avoidBuggyIPs) === 0n) {
      r.add(addrNode!, `Add usable addresses: avoidBuggyIPs leaves none in ${ranges.map((x) => quote(formatRange(x))).join(', ')}`);
    }
    if (name !== undefined) {
      const prev = pools.get(name);
      if (prev) r.add(nameNode!, `Use another name: pool "${name}" is already defined (pools[${prev.index}])`);
      else pools.set(name, { spec, index: i, ranges });
    }
  });
  return pools;
}

function readBackends(r: Reader, n: YNode | undefined): BackendSpec[] {
  const out: BackendSpec[] = [];
  const seen = new Map<string, string>();
  const items = r.list(n);
  if (items && items.length === 0) r.add(n!, 'Add at least one backend');
  items?.forEach((item) => {
    const m = r.map(item, BACKEND_KEYS);
    if (!m) return;
    const address = r.ip(r.required(m, 'address'), 'backend');
    const port = r.port(r.required(m, 'port'));
    const weight = r.int(r.value(m, 'weight'), 1, MAX_WEIGHT, 'a weight') ?? 1;
    if (address === undefined || port === undefined) return;
    const key = `${address.includes(':') ? `[${address}]` : address}:${port}`;
    const first = seen.get(key);
    if (first) {
      r.add(item, `Remove the duplicate backend "${key}" (also ${first})`);
      return;
    }
    seen.set(key, item.path);
    out.push({ address, port, weight });
  });
  return out;
}

function readServices(r: Reader, n: YNode | undefined, pools: Map<string, PoolInfo>, defaults: Defaults): ServiceSpec[] {
  const out: ServiceSpec[] = [];
  const names = new Map<string, string>();
  /** listenerKey of a fixed VIP -> where it is first used. */
  const listeners = new Map<string, { service: string; path: string }>();
  const hints = Object.fromEntries(SETTINGS_KEYS.map((k) => [k, `set "${k}" on each port, or in defaults`]));
  hints['backends'] = 'set "backends" on each port';
  hints['protocol'] = 'set "protocol" on each port';
  (r.list(n) ?? []).forEach((item, i) => {
    const m = r.map(item, SERVICE_KEYS, hints);
    if (!m) return;
    const nameNode = r.required(m, 'name');
    const name = r.name(nameNode, 'service');
    if (name !== undefined) {
      const prev = names.get(name);
      if (prev) r.add(nameNode!, `Use another name: service "${name}" is already defined (${prev})`);
      else names.set(name, m.path);
    }
    const addrNode = r.value(m, 'address');
    const poolNode = r.value(m, 'pool');
    let address: string | undefined;
    let pool: string | undefined;
    if (addrNode && poolNode) {
      r.add(poolNode, 'Remove "pool" or "address": a service has a fixed address or a pool, not both');
    } else if (!addrNode && !poolNode) {
      r.ps.add(childPath(m.path, 'address'), m.line, 'Add "address" (a fixed VIP) or "pool" (a VIP allocated from a pool)');
    }
    if (addrNode) address = r.ip(addrNode, 'service address');
    if (poolNode && !addrNode) {
      const p = r.str(poolNode);
      if (p !== undefined) {
        if (pools.has(p)) pool = p;
        else {
          const near = closest(p, [...pools.keys()]);
          const defined = pools.size ? ` (defined: ${orList([...pools.keys()])}${near ? `; did you mean "${near}"?` : ''})` : ' (no pool is defined)';
          r.add(poolNode, `Define pool ${quote(p)} under "pools", or name a defined one${defined}`);
        }
      }
    }

    const ports: PortSpec[] = [];
    const portsNode = r.required(m, 'ports');
    const portItems = r.list(portsNode);
    if (portItems && portItems.length === 0) r.add(portsNode!, 'Add at least one port');
    const own = new Map<string, string>();
    portItems?.forEach((pItem) => {
      const pm = r.map(pItem, PORT_KEYS);
      if (!pm) return;
      const port = r.port(r.required(pm, 'port'));
      const protocol = r.oneOf(r.value(pm, 'protocol'), PROTOCOLS) ?? 'TCP';
      const settings = readSettings(r, pm, defaults);
      const backends = readBackends(r, r.required(pm, 'backends'));
      const hc = settings.healthCheck;
      const healthCheck: HealthCheckSpec = {
        type: hc.type ?? (protocol === 'TCP' ? 'tcp' : 'none'),
        interval: hc.interval,
        timeout: hc.timeout,
        rise: hc.rise,
        fall: hc.fall,
        path: hc.path,
      };
      if (hc.port !== undefined) healthCheck.port = hc.port;
      if (port === undefined) return;
      const where = r.value(pm, 'port')!;
      const pp = `${port}/${protocol}`;
      const dup = own.get(pp);
      if (dup) r.add(where, `Use another port: ${pp} is already used by this service (${dup})`);
      else {
        own.set(pp, pm.path);
        if (address !== undefined) {
          const key = listenerKey(address, port, protocol);
          const other = listeners.get(key);
          if (other) {
            r.add(where, `Use another port or address: ${pp} on "${address}" is already used by service "${other.service}" (${other.path})`);
          } else listeners.set(key, { service: name ?? m.path, path: pm.path });
        }
      }
      ports.push({ port, protocol, scheduler: settings.scheduler, healthCheck, timeouts: settings.timeouts, proxyProtocol: settings.proxyProtocol, retries: settings.retries, limits: settings.limits, backends });
    });
    const svc: ServiceSpec = { name: name ?? `#${i}`, ports };
    if (address !== undefined) svc.address = address;
    if (pool !== undefined) svc.pool = pool;
    out.push(svc);
  });
  return out;
}

function readAdminListen(r: Reader, n: YNode | undefined): { host: string; port: number } | undefined {
  const s = r.str(n);
  if (s === undefined) return undefined;
  const bad = (msg: string) => {
    r.add(n!, msg);
    return undefined;
  };
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (parseIp(host)?.family !== 6) return bad(`Use an IPv6 address inside the brackets of ${quote(s)}`);
  } else {
    const colons = s.split(':').length - 1;
    if (colons === 0) return bad(`Add a port: use "host:port" such as "127.0.0.1:9470", not ${quote(s)}`);
    if (colons > 1) return bad(`Put an IPv6 address in brackets, as in "[::1]:9470", not ${quote(s)}`);
    [host, portText] = s.split(':') as [string, string];
    if (host === '') return bad(`Add a host before the port: use "0.0.0.0${s}" to listen on every address, or "127.0.0.1${s}"`);
    if (parseIp(host) === undefined && !/^(?=.*[A-Za-z])[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(host)) {
      return bad(`Use an IP address or a host name before the port, not ${quote(host)}`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    return bad(`Use a port in 0..65535 after the host, not ${quote(portText)}`);
  }
  return { host: canonicalIp(host) ?? host, port: Number(portText) };
}

function readDocument(r: Reader, root: YMap, opts: ParseOptions): Config {
  r.known(root, TOP_KEYS);

  const nodeMap = r.map(r.value(root, 'node'), NODE_KEYS);
  const nodeName = r.word(r.value(nodeMap, 'name'), 'node.name') ?? (opts.hostname?.trim() || 'localhost');

  const annNode = r.value(root, 'announce');
  const ann = r.map(annNode, ANNOUNCE_KEYS);
  const modeNode = r.value(ann, 'mode');
  const mode = r.oneOf(modeNode, ['arp', 'none'] as const);
  const announce: Config['announce'] = { mode: mode ?? 'arp' };
  const ifNode = r.value(ann, 'interface');
  const iface = r.word(ifNode, 'the interface name');
  if (iface !== undefined) {
    if (iface.length > 15 || iface.includes('/')) r.add(ifNode!, `Use a network interface name (at most 15 characters, no "/"), not ${quote(iface)}`);
    else announce.interface = iface;
  }
  if (announce.mode === 'arp' && !ifNode && (mode === 'arp' || !modeNode)) {
    r.ps.add(
      'announce.interface',
      (ann ?? annNode ?? root).line,
      mode === 'arp'
        ? 'Add "interface" (the LAN interface that answers ARP): it is required when announce.mode is "arp"'
        : 'Add announce.interface (the LAN interface that answers ARP), or set announce.mode to "none": mode "arp" is the default',
    );
  }

  const pools = readPools(r, r.value(root, 'pools'));

  const defMap = r.map(r.value(root, 'defaults'), SETTINGS_KEYS);
  const defaults = readSettings(r, defMap, builtinDefaults());

  const services = readServices(r, r.value(root, 'services'), pools, defaults);

  const kMap = r.map(r.value(root, 'kubernetes'), K8S_KEYS);
  const kubernetes = builtinKubernetes();
  kubernetes.enabled = r.bool(r.value(kMap, 'enabled')) ?? kubernetes.enabled;
  const nhc = r.map(r.value(kMap, 'nodeHealthCheck'), NODE_HC_KEYS);
  kubernetes.nodeHealthCheck.type = r.oneOf(r.value(nhc, 'type'), HEALTH_CHECK_TYPES) ?? kubernetes.nodeHealthCheck.type;
  kubernetes.nodeHealthCheck.port = r.port(r.value(nhc, 'port')) ?? kubernetes.nodeHealthCheck.port;
  const nhcPathNode = r.value(nhc, 'path');
  const nhcPath = r.word(nhcPathNode, 'the path');
  if (nhcPath !== undefined) {
    if (nhcPath.startsWith('/')) kubernetes.nodeHealthCheck.path = nhcPath;
    else r.add(nhcPathNode!, `Start the path with "/": ${quote(nhcPath)}`);
  }
  kubernetes.kubeconfig = r.str(r.value(kMap, 'kubeconfig')) ?? null;
  kubernetes.loadBalancerClass = r.word(r.value(kMap, 'loadBalancerClass'), 'the class') ?? kubernetes.loadBalancerClass;
  kubernetes.claimUnclassed = r.bool(r.value(kMap, 'claimUnclassed')) ?? kubernetes.claimUnclassed;
  kubernetes.nodeAddressType = r.oneOf(r.value(kMap, 'nodeAddressType'), NODE_ADDRESS_TYPES) ?? kubernetes.nodeAddressType;

  const hMap = r.map(r.value(root, 'ha'), HA_KEYS);
  const ha = builtinHa();
  const haEnabledNode = r.value(hMap, 'enabled');
  ha.enabled = r.bool(haEnabledNode) ?? ha.enabled;
  if (ha.enabled && !kubernetes.enabled) {
    r.add(haEnabledNode!, 'Set kubernetes.enabled to true, or ha.enabled to false: HA keeps its Leases in the cluster');
  }
  const nsNode = r.value(hMap, 'leaseNamespace');
  const ns = r.str(nsNode);
  if (ns !== undefined) {
    if (/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(ns)) ha.leaseNamespace = ns;
    else r.add(nsNode!, `Use a Kubernetes namespace name (lower case letters, digits and "-", at most 63), not ${quote(ns)}`);
  }
  const ldNode = r.value(hMap, 'leaseDuration');
  const rnNode = r.value(hMap, 'renewInterval');
  const ld = r.duration(ldNode, 1);
  const rn = r.duration(rnNode, 1);
  if (ld !== undefined) ha.leaseDuration = ld;
  if (rn !== undefined) ha.renewInterval = rn;
  ha.holdDown = r.duration(r.value(hMap, 'holdDown'), 0) ?? ha.holdDown;
  if ((ldNode || rnNode) && (!ldNode || ld !== undefined) && (!rnNode || rn !== undefined) && ha.renewInterval >= ha.leaseDuration) {
    const at = rn !== undefined ? rnNode! : ldNode!;
    r.add(at, `Set ha.renewInterval (${ha.renewInterval}ms) below ha.leaseDuration (${ha.leaseDuration}ms)`);
  }

  const dMap = r.map(r.value(root, 'dataplane'), DATAPLANE_KEYS);
  let workers: number | 'auto' = 'auto';
  const wNode = r.value(dMap, 'workers');
  if (wNode) {
    if (wNode.kind === 'scalar' && wNode.value === 'auto') workers = 'auto';
    else if (wNode.kind === 'scalar' && typeof wNode.value === 'number') workers = r.int(wNode, 1, 1024, 'a worker count') ?? 'auto';
    else r.add(wNode, `Use "auto" or a worker count in 1..1024, not ${describe(wNode)}`);
  }
  const engine = r.oneOf(r.value(dMap, 'engine'), TCP_ENGINES) ?? 'epoll';

  const aMap = r.map(r.value(root, 'admin'), ADMIN_KEYS);
  const listen = readAdminListen(r, r.value(aMap, 'listen')) ?? { host: '127.0.0.1', port: 9470 };

  const sMap = r.map(r.value(root, 'state'), STATE_KEYS);
  const dir = r.str(r.value(sMap, 'dir')) ?? '/var/lib/edgeport';

  return {
    node: { name: nodeName },
    announce,
    pools: [...pools.values()].map((p) => p.spec),
    defaults,
    services,
    kubernetes,
    ha,
    dataplane: { workers, engine },
    admin: { listen },
    state: { dir },
  };
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t === '' ? 'invalid YAML' : t;
}

function parseInner(text: string, opts: ParseOptions, ps: Problems): Config | undefined {
  const lc = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false, merge: true });
  } catch (e) {
    ps.add('(document)', 1, `Fix the YAML: ${oneLine(e instanceof Error ? e.message : textOf(e))}`);
    return undefined;
  }
  const lineAt = (offset: unknown) => (typeof offset === 'number' && offset >= 0 ? lc.linePos(Math.min(offset, text.length)).line : 1);
  for (const e of [...doc.errors, ...doc.warnings]) {
    const offset = e.pos?.[0] ?? 0;
    const message =
      e.code === 'MULTIPLE_DOCS' ? 'Remove the second document (from "---" on): a configuration is one YAML document' : `Fix the YAML: ${oneLine(e.message)}`;
    ps.add(e.code === 'MULTIPLE_DOCS' ? '(document)' : pathAt(doc.contents, offset, ''), lineAt(offset), message);
  }
  if (ps.list.length > 0) return undefined;

  const root = new Converter(doc, lc, ps).convert(doc.contents as YamlNode | null, '', 1);
  if (root.kind === 'scalar' && (root.value === null || root.value === undefined)) {
    ps.add('(document)', root.line, 'Write the configuration: the document is empty');
    return undefined;
  }
  if (root.kind !== 'map') {
    ps.add('(document)', root.line, `Use a map of settings (node:, pools:, services: ...) at the top level, not ${describe(root)}`);
    return undefined;
  }
  return readDocument(new Reader(ps), root, opts);
}

/** Parses and validates a configuration; throws ConfigError with every problem found. */
export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  const ps = new Problems();
  let cfg: Config | undefined;
  try {
    cfg = parseInner(text, opts, ps);
  } catch (e) {
    // A bug here must still come out as a ConfigError (SPEC: exit code 2 with the problems);
    // the fuzz test fails on this message, so it never hides one.
    ps.add('(document)', 1, `Cannot validate the configuration: internal error (${oneLine(e instanceof Error ? e.message : textOf(e))}); please report it`);
  }
  if (ps.list.length > 0 || !cfg) {
    if (ps.list.length === 0) ps.add('(document)', 1, 'Cannot validate the configuration: internal error (no result); please report it');
    const sorted = ps.list.map((p, i) => ({ p, i })).sort((a, b) => a.p.line - b.p.line || a.i - b.i).map((x) => x.p);
    throw new ConfigError(sorted, opts.file);
  }
  return cfg;
}
