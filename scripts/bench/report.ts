// Statistics and the printed table.
import type { ProxyName } from './configs.ts';
import type { MetricDef, Metrics, TestDef, TestId } from './tests.ts';

/** The test's figures, with proxy CPU per unit of work (and its user/kernel split) where the test has it. */
export function allMetrics(t: TestDef): MetricDef[] {
  if (!t.cpuPer) return [...t.metrics];
  const { key, label, unit, better, digits } = t.cpuPer;
  const per: MetricDef = { key, label, unit, better, digits };
  const split: MetricDef[] = t.cpuSplit
    ? [
        { ...per, key: `${per.key}User`, label: `${per.label}, user` },
        { ...per, key: `${per.key}Sys`, label: `${per.label}, kernel` },
      ]
    : [];
  return [...t.metrics, per, ...split];
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

export interface Cell {
  workers: number;
  cpus: string;
  test: TestId;
  proxy: ProxyName;
  status: 'ok' | 'skipped' | 'error';
  reason?: string;
  runs: Metrics[];
  summary: Record<string, Summary | null>;
}

export function summarizeRuns(runs: readonly Metrics[]): Record<string, Summary | null> {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)));
  const out: Record<string, Summary | null> = {};
  for (const k of keys) out[k] = summarize(runs.map((r) => r[k] ?? NaN));
  return out;
}

function fmt(x: number, digits: number): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cellText(c: Cell | undefined, key: string, digits: number): string {
  if (!c) return '';
  if (c.status === 'skipped') return 'skipped';
  if (c.status === 'error' && c.runs.length === 0) return 'error';
  const s = c.summary[key];
  if (!s) return '-';
  const main = fmt(s.median, digits);
  return s.n > 1 ? `${main} (${fmt(s.min, digits)}-${fmt(s.max, digits)})` : main;
}

export function ratio(a: Cell | undefined, b: Cell | undefined, key: string): number | null {
  const x = a?.status === 'ok' ? a.summary[key]?.median : undefined;
  const y = b?.status === 'ok' ? b.summary[key]?.median : undefined;
  if (x === undefined || y === undefined || y === 0) return null;
  return x / y;
}

function pad(s: string, w: number, right = false): string {
  return right ? s.padStart(w) : s.padEnd(w);
}

/** Edgeport on its raw engine and the bare Node ceilings (node-proxy.ts): a column each, and their ratio to HAProxy, when measured. */
const CEILINGS: ReadonlyArray<{ proxy: ProxyName; title: string; ratio: string }> = [
  { proxy: 'edgeport-raw', title: 'E raw', ratio: 'Eraw/HAProxy' },
  { proxy: 'node-net', title: 'Node net', ratio: 'Nnet/HAProxy' },
  { proxy: 'node-raw', title: 'Node raw', ratio: 'Nraw/HAProxy' },
];

/** Table: one line per (row, test, metric); medians with (min-max) over the runs. */
export function renderTable(cells: readonly Cell[], tests: readonly TestDef[], rows: readonly number[]): string {
  const ceilings = CEILINGS.filter((x) => cells.some((c) => c.proxy === x.proxy));
  const header = [
    'workers', 'test / metric', 'unit', 'better', 'Edgeport', 'HAProxy', 'nginx', ...ceilings.map((x) => x.title),
    'E/HAProxy', 'E/nginx', ...ceilings.map((x) => x.ratio),
  ];
  const x = (r: number | null): string => (r === null ? '' : `${r.toFixed(2)}x`);
  const lines: string[][] = [];
  for (const w of rows) {
    for (const t of tests) {
      const get = (p: ProxyName): Cell | undefined => cells.find((c) => c.workers === w && c.test === t.id && c.proxy === p);
      if (!cells.some((c) => c.workers === w && c.test === t.id)) continue;
      for (const m of allMetrics(t)) {
        const e = get('edgeport');
        const h = get('haproxy');
        const n = get('nginx');
        lines.push([
          String(w),
          `${t.id} ${m.label}`,
          m.unit,
          m.better,
          cellText(e, m.key, m.digits),
          t.proxies.includes('haproxy') ? cellText(h, m.key, m.digits) : 'n/a',
          cellText(n, m.key, m.digits),
          ...ceilings.map((c) => cellText(get(c.proxy), m.key, m.digits)),
          x(ratio(e, h, m.key)),
          x(ratio(e, n, m.key)),
          ...ceilings.map((c) => x(ratio(get(c.proxy), h, m.key))),
        ]);
      }
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const row = (l: readonly string[]): string => l.map((s, i) => pad(s, widths[i]!, i >= 4)).join('  ');
  const out = [row(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let prev = '';
  for (const l of lines) {
    const key = `${l[0]}|${l[1]!.split(' ')[0]}`;
    if (prev && key !== prev) out.push('');
    prev = key;
    out.push(row(l));
  }
  return out.join('\n');
}
