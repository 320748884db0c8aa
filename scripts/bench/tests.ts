// The five measurements. Each run() is one bounded measurement through the proxy's front
// port, with load generators pinned to core 0; it returns named figures.
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST, PORTS, type ProxyName } from './configs.ts';
import { raceTimeout, run, start, stop, tail, treeRssKiB } from './procs.ts';
import type { Tool, ToolPaths } from './tools.ts';

export const LOAD_CPUS = '0';

export type TestId = 'tcp-bulk' | 'conn-rate' | 'keepalive' | 'udp' | 'idle-mem';
export type BackendId = 'http' | 'iperf3' | 'tcp-echo' | 'udp-echo';
export type Metrics = Record<string, number>;

export interface MetricDef {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  digits: number;
}

export interface RunContext {
  tools: ToolPaths;
  loadgen: string; // compiled helper
  durationS: number;
  proxy: ProxyName;
  proxyPid: number;
}

export interface TestDef {
  id: TestId;
  title: string;
  proxies: readonly ProxyName[];
  needs: readonly Tool[];
  backends: readonly BackendId[];
  measureCpu: boolean;
  /** Proxy CPU per unit of work: cpuSeconds * scale / metrics.work (run() reports work). */
  cpuPer?: MetricDef & { scale: number };
  /** Also report cpuPer split into user and kernel time (keys cpuPer.key + 'User' / 'Sys'). */
  cpuSplit?: boolean;
  metrics: readonly MetricDef[];
  warmup?(ctx: RunContext): Promise<void>;
  run(ctx: RunContext): Promise<Metrics>;
}

// ---- parsers (exported for a quick self-check) ----

const TIME_UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function wrkTimeMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
  if (!m) throw new Error(`Cannot parse wrk time "${s}"`);
  return Number(m[1]) * TIME_UNIT_MS[m[2]!]!;
}

export interface WrkResult {
  rps: number;
  requests: number;
  p50Ms?: number;
  p99Ms?: number;
  errors: number; // socket errors + non-2xx/3xx
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const reqs = /(\d+) requests in/.exec(out);
  if (!rps || !reqs) throw new Error(`Cannot parse wrk output:\n${tail(out)}`);
  const r: WrkResult = { rps: Number(rps[1]), requests: Number(reqs[1]), errors: 0 };
  const p50 = /^\s+50%\s+(\S+)/m.exec(out);
  const p99 = /^\s+99%\s+(\S+)/m.exec(out);
  if (p50) r.p50Ms = wrkTimeMs(p50[1]!);
  if (p99) r.p99Ms = wrkTimeMs(p99[1]!);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (se) r.errors += Number(se[1]) + Number(se[2]) + Number(se[3]) + Number(se[4]);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) r.errors += Number(non2xx[1]);
  return r;
}

/** Receiver's rate over the measured seconds, and bytes sent over the whole test (omitted seconds too). */
export function parseIperf3(out: string): { bps: number; bytes: number } {
  let j: {
    error?: string;
    intervals?: Array<{ sum?: { bytes?: number } }>;
    end?: { sum_received?: { bits_per_second?: number } };
  };
  try {
    j = JSON.parse(out) as typeof j;
  } catch {
    throw new Error(`Cannot parse iperf3 JSON:\n${tail(out)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error('iperf3 JSON has no end.sum_received.bits_per_second');
  const bytes = (j.intervals ?? []).reduce((s, i) => s + (i.sum?.bytes ?? 0), 0);
  return { bps, bytes };
}

// ---- load generators ----

const WRK_CONNECTIONS = 50;

async function wrk(ctx: RunContext, seconds: number, close: boolean): Promise<WrkResult> {
  const args = ['-t1', `-c${WRK_CONNECTIONS}`, `-d${seconds}s`, '--timeout', '2s', '--latency'];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://${HOST}:${PORTS.httpFront}/`);
  const r = await run('wrk', ctx.tools.wrk!, args, { cpus: LOAD_CPUS, timeoutMs: (seconds + 15) * 1000 });
  if (r.code !== 0) throw new Error(`wrk failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${tail(r.output)}`);
  return parseWrk(r.stdout);
}

const UDP_SOCKETS = 64; // client sessions
const UDP_WINDOW = 1; // requests in flight per session (nginx's proxy_responses 1 wants 1)
const UDP_TIMEOUT_MS = 200; // unanswered after this: lost
const UDP_SIZE = 64;

interface UdpResult {
  qps: number;
  lossPct: number;
  p50Us: number;
  p99Us: number;
  sent: number;
  received: number;
  lost: number;
}

async function udpLoad(ctx: RunContext, seconds: number): Promise<UdpResult> {
  const args = [
    'udp-load', HOST, String(PORTS.udpFront), String(UDP_SOCKETS), String(UDP_WINDOW),
    String(Math.round(seconds * 1000)), String(UDP_TIMEOUT_MS), String(UDP_SIZE),
  ];
  const r = await run('loadgen udp-load', ctx.loadgen, args, { cpus: LOAD_CPUS, timeoutMs: (seconds + 10) * 1000 });
  if (r.code !== 0) throw new Error(`loadgen udp-load failed (code ${r.code}):\n${tail(r.output)}`);
  try {
    return JSON.parse(r.stdout.trim()) as UdpResult;
  } catch {
    throw new Error(`Cannot parse loadgen output:\n${tail(r.output)}`);
  }
}

const IDLE_CONNECTIONS = 5000;

// ---- the tests ----

const ALL: readonly ProxyName[] = ['edgeport', 'edgeport-raw', 'haproxy', 'nginx', 'node-net', 'node-raw'];
const cpuMetric: MetricDef = { key: 'cpuPct', label: 'proxy CPU', unit: '%', better: 'lower', digits: 0 };

export const TESTS: readonly TestDef[] = [
  {
    id: 'tcp-bulk',
    title: 'TCP bulk, 1 stream (iperf3)',
    proxies: ALL,
    needs: ['iperf3'],
    backends: ['iperf3'],
    measureCpu: true,
    cpuPer: { key: 'cpuMsPerGB', label: 'proxy CPU per GB', unit: 'ms', better: 'lower', digits: 0, scale: 1e3 },
    metrics: [{ key: 'gbps', label: 'throughput', unit: 'Gbit/s', better: 'higher', digits: 2 }, cpuMetric],
    async run(ctx) {
      const secs = Math.max(2, ctx.durationS - 1);
      const args = ['-c', HOST, '-p', String(PORTS.bulkFront), '-t', String(secs), '-O', '1', '-J'];
      // the iperf3 server takes one test at a time: retry briefly while it finishes the last
      for (let attempt = 0; ; attempt++) {
        const r = await run('iperf3 -c', ctx.tools.iperf3!, args, { cpus: LOAD_CPUS, timeoutMs: (secs + 15) * 1000 });
        if (r.code === 0) {
          const { bps, bytes } = parseIperf3(r.stdout);
          return { gbps: bps / 1e9, work: bytes / 1e9 };
        }
        if (attempt < 3 && /busy/i.test(r.stdout + r.output)) {
          await sleep(500);
          continue;
        }
        let msg = r.output;
        try {
          msg = String((JSON.parse(r.stdout) as { error?: string }).error ?? r.output);
        } catch {
          /* keep raw */
        }
        throw new Error(`iperf3 failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${msg}`);
      }
    },
  },
  {
    id: 'conn-rate',
    title: 'New connections/s: HTTP, Connection: close (wrk)',
    proxies: ALL,
    needs: ['wrk', 'nginx'],
    backends: ['http'],
    measureCpu: true,
    cpuPer: { key: 'cpuUsPerConn', label: 'proxy CPU per conn', unit: 'us', better: 'lower', digits: 1, scale: 1e6 },
    cpuSplit: true,
    metrics: [
      { key: 'cps', label: 'connections/s', unit: 'conn/s', better: 'higher', digits: 0 },
      { key: 'errors', label: 'errors', unit: 'count', better: 'lower', digits: 0 },
      cpuMetric,
    ],
    async warmup(ctx) {
      await wrk(ctx, 1, true);
    },
    async run(ctx) {
      const r = await wrk(ctx, ctx.durationS, true);
      return { cps: r.rps, errors: r.errors, work: r.requests };
    },
  },
  {
    id: 'keepalive',
    title: 'Keep-alive HTTP requests/s (wrk --latency)',
    proxies: ALL,
    needs: ['wrk', 'nginx'],
    backends: ['http'],
    measureCpu: true,
    cpuPer: { key: 'cpuUsPerReq', label: 'proxy CPU per request', unit: 'us', better: 'lower', digits: 1, scale: 1e6 },
    metrics: [
      { key: 'rps', label: 'requests/s', unit: 'req/s', better: 'higher', digits: 0 },
      { key: 'p50Ms', label: 'p50', unit: 'ms', better: 'lower', digits: 2 },
      { key: 'p99Ms', label: 'p99', unit: 'ms', better: 'lower', digits: 2 },
      { key: 'errors', label: 'errors', unit: 'count', better: 'lower', digits: 0 },
      cpuMetric,
    ],
    async warmup(ctx) {
      await wrk(ctx, 1, false);
    },
    async run(ctx) {
      const r = await wrk(ctx, ctx.durationS, false);
      return { rps: r.rps, p50Ms: r.p50Ms ?? NaN, p99Ms: r.p99Ms ?? NaN, errors: r.errors, work: r.requests };
    },
  },
  {
    id: 'udp',
    title: `UDP request/response, ${UDP_SOCKETS} sessions x ${UDP_WINDOW} in flight, ${UDP_SIZE} B`,
    proxies: ['edgeport', 'edgeport-raw', 'nginx'], // HAProxy has no UDP
    needs: ['cc'],
    backends: ['udp-echo'],
    measureCpu: true,
    cpuPer: { key: 'cpuUsPerQuery', label: 'proxy CPU per query', unit: 'us', better: 'lower', digits: 1, scale: 1e6 },
    metrics: [
      { key: 'qps', label: 'queries/s', unit: 'q/s', better: 'higher', digits: 0 },
      { key: 'lossPct', label: `loss (>${UDP_TIMEOUT_MS} ms)`, unit: '%', better: 'lower', digits: 3 },
      { key: 'p50Us', label: 'p50', unit: 'us', better: 'lower', digits: 0 },
      { key: 'p99Us', label: 'p99', unit: 'us', better: 'lower', digits: 0 },
      cpuMetric,
    ],
    async warmup(ctx) {
      await udpLoad(ctx, 1);
    },
    async run(ctx) {
      const r = await udpLoad(ctx, ctx.durationS);
      return { qps: r.qps, lossPct: r.lossPct, p50Us: r.p50Us, p99Us: r.p99Us, sent: r.sent, lost: r.lost, work: r.sent };
    },
  },
  {
    id: 'idle-mem',
    title: `Memory per idle connection (RSS growth over ${IDLE_CONNECTIONS} held connections)`,
    proxies: ALL,
    needs: ['cc'],
    backends: ['tcp-echo'],
    measureCpu: false,
    metrics: [
      { key: 'kibPerConn', label: 'RSS per connection', unit: 'KiB', better: 'lower', digits: 1 },
      { key: 'rssBeforeMiB', label: 'RSS before', unit: 'MiB', better: 'lower', digits: 1 },
      { key: 'rssAfterMiB', label: 'RSS after', unit: 'MiB', better: 'lower', digits: 1 },
    ],
    async run(ctx) {
      await sleep(500); // let the freshly started proxy settle
      const before = treeRssKiB(ctx.proxyPid);
      const maxSecs = 60;
      // each connection: connect, 32 bytes there and back through the proxy, then idle
      const hold = start(
        'loadgen tcp-hold',
        ctx.loadgen,
        ['tcp-hold', HOST, String(PORTS.holdFront), String(IDLE_CONNECTIONS), '200', String(maxSecs)],
        { cpus: LOAD_CPUS, stdin: 'pipe' },
      );
      try {
        const deadline = Date.now() + (maxSecs + 5) * 1000;
        for (;;) {
          const line = hold.stdoutLines().find((l) => /^(READY|TIMEOUT|ERROR)/.test(l));
          if (line?.startsWith('READY')) break;
          if (line || !hold.isAlive() || Date.now() > deadline) {
            throw new Error(`Could not hold ${IDLE_CONNECTIONS} connections: ${line ?? 'no answer'}\n${tail(hold.output())}`);
          }
          await sleep(50);
        }
        await sleep(1000); // let lazy per-connection allocations happen
        const after = treeRssKiB(ctx.proxyPid);
        return {
          kibPerConn: (after - before) / IDLE_CONNECTIONS,
          rssBeforeMiB: before / 1024,
          rssAfterMiB: after / 1024,
        };
      } finally {
        hold.child.stdin?.end();
        await Promise.race([hold.exited, raceTimeout(3000)]);
        await stop(hold, 500);
      }
    },
  },
];
