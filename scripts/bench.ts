// npm run bench: Edgeport against HAProxy and nginx (stream) on this machine.
// Each proxy runs pinned to core 1 (the 2-worker row: cores 0,1); load generators and
// backends run on core 0. All traffic stays on 127.0.0.1. See --help.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  edgeportConfig, haproxyConfig, HOST, nginxBackendConfig, nginxStreamConfig, PORTS,
  type NginxInfo, type ProxyName,
} from './bench/configs.ts';
import {
  killAllSync, start, stop, stopAll, tail, tcpConnects, treeCpuTimes, waitHttpOk, waitTcp, type Proc,
} from './bench/procs.ts';
import { allMetrics, renderTable, ratio, summarizeRuns, type Cell } from './bench/report.ts';
import { LOAD_CPUS, TESTS, type BackendId, type Metrics, type RunContext, type TestDef } from './bench/tests.ts';
import { failoverTable, measureFailover, type FailoverResult } from './bench/failover.ts';
import { netnsSkipReason } from '../test/support/netns.ts';
import { aptInstall, findTools, missingTools, packagesFor, versions, type Tool, type ToolPaths } from './bench/tools.ts';

const REPO = resolve(import.meta.dirname, '..');
// EDGEPORT_BENCH_MAIN: another entry point to measure (another checkout's lb/cli/main.ts)
const EDGEPORT_MAIN = resolve(process.env.EDGEPORT_BENCH_MAIN ?? join(REPO, 'lb', 'cli', 'main.ts'));
// Edgeport runs as installed: through the edgeport shim beside main.ts (its Node and V8 flags)
const EDGEPORT_SHIM = join(dirname(EDGEPORT_MAIN), 'edgeport');
const NODE_PROXY = join(import.meta.dirname, 'bench', 'node-proxy.ts');
const PROXY_CPUS: Record<number, string> = { 1: '1', 2: '0,1' };
const PROXY_LABEL: Record<ProxyName, string> = {
  edgeport: 'Edgeport', 'edgeport-raw': 'E raw', haproxy: 'HAProxy', nginx: 'nginx', 'node-net': 'Node net', 'node-raw': 'Node raw',
};

const HELP = `Usage: npm run bench -- [options]   (or: node scripts/bench.ts [options])

Measures Edgeport, HAProxy (TCP) and nginx stream (TCP, UDP) on 127.0.0.1. Each proxy runs
pinned to core 1 (taskset -c 1); load generators and backends run on core 0. A second row
runs 2 workers on cores 0,1 (shared with the load). Results: a table on stdout and
bench-results/<timestamp>.json.

Options:
  --quick              1 run per figure (default: 3 runs, median with min and max)
  --runs N             runs per figure
  --duration S         seconds per run (default 5)
  --only LIST          tests, comma-separated: ${TESTS.map((t) => t.id).join(',')}
  --proxies LIST       proxies, comma-separated: edgeport,haproxy,nginx (the default);
                       edgeport-raw (Edgeport on dataplane.engine: raw, the libuv engine); the
                       bare Node ceilings node-net (net.Server + net.connect, nothing else)
                       and node-raw (libuv handles without net.Socket; TCP tests only)
  --workers LIST       rows, comma-separated worker counts: 1,2 (default: 1,2)
  --failover N         HA failover rounds, kill -9 and SIGTERM each (default 10; 0: none):
                       two appliances in network namespaces (needs root), median and worst
  --install            apt-get install the missing Debian packages, then run
  --help               this text

Edgeport runs through its lb/cli/edgeport shim (the installed command, with its Node flags).
Environment: EDGEPORT_BENCH_MAIN=path/to/lb/cli/main.ts measures another Edgeport checkout.

Needs (Debian packages): haproxy nginx-light libnginx-mod-stream wrk iperf3 gcc libc6-dev
`;

interface Options {
  runs: number;
  durationS: number;
  tests: TestDef[];
  proxies: ProxyName[];
  rows: number[];
  install: boolean;
  /** HA failover rounds (crash and SIGTERM each); 0: none. */
  failoverRuns: number;
}

function fail(msg: string, code = 1): never {
  console.error(msg);
  process.exit(code);
}

function parseOptions(): Options {
  let a;
  try {
    a = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        runs: { type: 'string' },
        duration: { type: 'string', default: '5' },
        only: { type: 'string' },
        proxies: { type: 'string', default: 'edgeport,haproxy,nginx' },
        workers: { type: 'string', default: '1,2' },
        install: { type: 'boolean', default: false },
        failover: { type: 'string', default: '10' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n\n${HELP}`, 2);
  }
  if (a.help) {
    console.log(HELP);
    process.exit(0);
  }
  const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean);
  const runs = a.runs !== undefined ? Number(a.runs) : a.quick ? 1 : 3;
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) fail(`--runs must be 1..20, got "${a.runs}"`, 2);
  const durationS = Number(a.duration);
  if (!Number.isFinite(durationS) || durationS < 2 || durationS > 60) fail(`--duration must be 2..60 seconds, got "${a.duration}"`, 2);
  const ids = a.only !== undefined ? list(a.only) : TESTS.map((t) => t.id);
  const unknown = ids.filter((id) => !TESTS.some((t) => t.id === id));
  if (unknown.length) fail(`Unknown test ${unknown.map((u) => `"${u}"`).join(', ')}; tests: ${TESTS.map((t) => t.id).join(', ')}`, 2);
  const proxies = list(a.proxies);
  const badProxy = proxies.filter((p) => !(p in PROXY_LABEL));
  if (badProxy.length) fail(`Unknown proxy ${badProxy.map((u) => `"${u}"`).join(', ')}; proxies: ${Object.keys(PROXY_LABEL).join(', ')}`, 2);
  const rows = list(a.workers).map(Number);
  if (rows.some((w) => !(w in PROXY_CPUS))) fail(`--workers takes 1 and/or 2, got "${a.workers}"`, 2);
  const failoverRuns = Number(a.failover);
  if (!Number.isInteger(failoverRuns) || failoverRuns < 0 || failoverRuns > 50) fail(`--failover must be 0..50, got "${a.failover}"`, 2);
  return {
    failoverRuns,
    runs,
    durationS,
    tests: TESTS.filter((t) => ids.includes(t.id)),
    proxies: proxies as ProxyName[],
    rows,
    install: a.install,
  };
}

function neededTools(o: Options): Set<Tool> {
  const need = new Set<Tool>(['taskset']);
  for (const t of o.tests) for (const n of t.needs) need.add(n);
  if (o.proxies.includes('haproxy') && o.tests.some((t) => t.proxies.includes('haproxy'))) need.add('haproxy');
  if (o.proxies.includes('nginx')) {
    need.add('nginx');
    need.add('nginx-stream');
  }
  return need;
}

function checkTools(o: Options): ToolPaths {
  const need = neededTools(o);
  let paths = findTools();
  let missing = missingTools(paths, need);
  if (missing.length && o.install) {
    const pkgs = packagesFor(missing);
    console.log(`Installing ${pkgs.join(' ')} (--install)`);
    if (!aptInstall(pkgs)) fail('apt-get failed; see its output above.');
    paths = findTools();
    missing = missingTools(paths, need);
  }
  if (missing.length) {
    const pkgs = packagesFor(missing);
    fail(
      `Missing tools for this bench: ${missing.join(', ')}.\n` +
        `Install them with:\n\n  apt-get update && apt-get install -y ${pkgs.join(' ')}\n\n` +
        `or rerun with --install to let the bench run that apt-get.`,
    );
  }
  return paths;
}

async function portFree(port: number, udp: boolean): Promise<boolean> {
  return new Promise((res) => {
    if (udp) {
      const s = createSocket('udp4');
      s.once('error', () => res(false));
      s.bind(port, HOST, () => s.close(() => res(true)));
    } else {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(port, HOST, () => s.close(() => res(true)));
    }
  });
}

async function checkPorts(): Promise<void> {
  const busy: string[] = [];
  for (const [name, port] of Object.entries(PORTS)) {
    const udp = name.startsWith('udp');
    if (!(await portFree(port, udp))) busy.push(`${port}/${udp ? 'udp' : 'tcp'} (${name})`);
  }
  if (busy.length) fail(`Ports in use on ${HOST}: ${busy.join(', ')}. Is another bench running? Stop it and retry.`);
}

/** The Node that runs this script runs the bare Node proxies (and Edgeport without its shim): the repo's pinned Node 24. */
function checkNode(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 24) {
    fail(`This bench runs Node proxies with the Node that runs it: need Node 24, this is ${process.version}.\n` +
      `Run: export PATH=${join(REPO, 'node_modules', '.bin')}:$PATH`);
  }
}

/** Percent of all CPUs busy over ms (from /proc/stat), before the bench starts anything. */
async function machineBusyPct(ms: number): Promise<number> {
  const sample = (): { busy: number; total: number } => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  };
  const a = sample();
  await sleep(ms);
  const b = sample();
  return b.total > a.total ? (100 * (b.busy - a.busy)) / (b.total - a.total) : 0;
}

// ---- proxies ----

interface ProxyHandle {
  proc: Proc;
}

let edgeportUnavailable: string | null = null;
let edgeportStarted = false;

async function startProxy(
  p: ProxyName, workers: number, dir: string, tools: ToolPaths, nginx: NginxInfo,
): Promise<ProxyHandle> {
  const cpus = PROXY_CPUS[workers]!;
  mkdirSync(dir, { recursive: true });
  let proc: Proc;
  if (p === 'haproxy') {
    const cfg = haproxyConfig(dir, workers);
    proc = start('haproxy', tools.haproxy!, ['-db', '-f', cfg], { cpus });
  } else if (p === 'nginx') {
    const cfg = nginxStreamConfig(dir, workers, nginx);
    proc = start('nginx', tools.nginx!, ['-p', dir, '-c', cfg, '-e', join(dir, 'error.log')], { cpus });
  } else if (p === 'node-net' || p === 'node-raw') {
    // the same young generation as the Edgeport shim gives, so only the proxy code differs
    const args = ['--max-semi-space-size=8', NODE_PROXY, p === 'node-net' ? 'net' : 'raw', String(workers)];
    proc = start(p, process.execPath, args, { cpus, cwd: REPO });
  } else {
    const cfg = edgeportConfig(dir, workers, p === 'edgeport-raw' ? 'raw' : undefined);
    const args = ['run', '--config', cfg, '--log-level', 'warn'];
    proc = existsSync(EDGEPORT_SHIM)
      ? start('edgeport', EDGEPORT_SHIM, args, { cpus, cwd: REPO })
      : start('edgeport', process.execPath, [EDGEPORT_MAIN, ...args], { cpus, cwd: REPO });
  }
  try {
    if (p === 'edgeport' || p === 'edgeport-raw') await waitHttpOk(`http://${HOST}:${PORTS.edgeportAdmin}/readyz`, 30_000, proc);
    // not bulkFront: a probe through it would reach iperf3 -s as a bogus test and make it
    // reset the next real one
    for (const port of [PORTS.httpFront, PORTS.holdFront]) await waitTcp(HOST, port, 15_000, proc);
  } catch (err) {
    await stop(proc, 1000);
    throw err;
  }
  return { proc };
}

async function stopProxy(h: ProxyHandle): Promise<void> {
  await stop(h.proc, 5000);
  // the next proxy binds the same ports: wait until nobody accepts there
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await tcpConnects(HOST, PORTS.httpFront, 200))) await sleep(100);
}

// ---- backends ----

async function startBackends(
  needed: ReadonlySet<BackendId>, tools: ToolPaths, loadgen: string, tmp: string, nginx: NginxInfo,
): Promise<Map<BackendId, Proc>> {
  const out = new Map<BackendId, Proc>();
  const cpus = LOAD_CPUS;
  if (needed.has('http')) {
    const dir = join(tmp, 'backend-http');
    mkdirSync(dir, { recursive: true });
    const cfg = nginxBackendConfig(dir, nginx);
    const p = start('nginx backend', tools.nginx!, ['-p', dir, '-c', cfg, '-e', join(dir, 'error.log')], { cpus });
    out.set('http', p);
    await waitTcp(HOST, PORTS.httpBack, 10_000, p);
  }
  if (needed.has('iperf3')) {
    const p = start('iperf3 -s', tools.iperf3!, ['-s', '-B', HOST, '-p', String(PORTS.bulkBack)], { cpus });
    out.set('iperf3', p);
    await waitTcp(HOST, PORTS.bulkBack, 10_000, p);
  }
  if (needed.has('tcp-echo')) {
    const p = start('loadgen tcp-echo', loadgen, ['tcp-echo', String(PORTS.holdBack)], { cpus });
    out.set('tcp-echo', p);
    await waitTcp(HOST, PORTS.holdBack, 10_000, p);
  }
  if (needed.has('udp-echo')) {
    const p = start('loadgen udp-echo', loadgen, ['udp-echo', String(PORTS.udpBack)], { cpus });
    out.set('udp-echo', p);
    await sleep(200);
    if (!p.isAlive()) throw new Error(`UDP echo backend failed:\n${tail(p.output())}`);
  }
  return out;
}

function compileLoadgen(cc: string, tmp: string): string {
  const src = join(import.meta.dirname, 'bench', 'loadgen.c');
  const bin = join(tmp, 'loadgen');
  const r = spawnSync(cc, ['-O2', '-Wall', '-o', bin, src], { encoding: 'utf8' });
  if (r.status !== 0) fail(`Cannot compile ${src} with ${cc}:\n${r.stderr}\n(Debian: apt-get install -y gcc libc6-dev)`);
  return bin;
}

// ---- main ----

async function main(): Promise<void> {
  const o = parseOptions();
  checkNode();
  const tools = checkTools(o);
  await checkPorts();

  if (o.proxies.includes('edgeport') && !existsSync(EDGEPORT_MAIN)) {
    edgeportUnavailable = `${EDGEPORT_MAIN} does not exist yet`;
    console.warn(`Edgeport: SKIPPED (${edgeportUnavailable}); measuring the others only.`);
  }

  // keep this orchestrating process (and what it spawns without taskset) off the proxy core
  spawnSync('taskset', ['-cp', LOAD_CPUS, String(process.pid)], { stdio: 'ignore' });

  const busyBefore = await machineBusyPct(1000);
  if (busyBefore > 10) {
    console.warn(`Note: the machine is ${busyBefore.toFixed(0)}% busy before the bench starts; other work skews the figures.`);
  }

  const tmp = mkdtempSync(join(tmpdir(), 'edgeport-bench-'));
  const removeTmp = (): void => rmSync(tmp, { recursive: true, force: true });
  const startedAt = new Date();
  const loadavgAtStart = loadavg();
  const cells: Cell[] = [];
  let interrupted = false;
  let failover: FailoverResult | undefined;
  const writeResults = (): string => {
    const dir = join(REPO, 'bench-results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    const ratios = cells
      .filter((c) => c.proxy === 'edgeport')
      .map((e) => {
        const other = (p: ProxyName): Cell | undefined =>
          cells.find((c) => c.workers === e.workers && c.test === e.test && c.proxy === p);
        const keys = Object.keys(e.summary);
        return {
          workers: e.workers,
          test: e.test,
          vsHaproxy: Object.fromEntries(keys.map((k) => [k, ratio(e, other('haproxy'), k)])),
          vsNginx: Object.fromEntries(keys.map((k) => [k, ratio(e, other('nginx'), k)])),
        };
      });
    // the raw engine and the bare Node ceilings against HAProxy, when measured (--proxies ...,edgeport-raw,node-raw)
    const ceilings = cells
      .filter((c) => c.proxy === 'edgeport-raw' || c.proxy === 'node-net' || c.proxy === 'node-raw')
      .map((n) => {
        const h = cells.find((c) => c.workers === n.workers && c.test === n.test && c.proxy === 'haproxy');
        return { proxy: n.proxy, workers: n.workers, test: n.test, vsHaproxy: Object.fromEntries(Object.keys(n.summary).map((k) => [k, ratio(n, h, k)])) };
      });
    const doc = {
      schema: 'edgeport-bench/1',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      interrupted,
      host: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memMiB: Math.round(totalmem() / 2 ** 20), loadavgAtStart, busyPctBefore: busyBefore },
      versions: versions(tools),
      options: { runs: o.runs, durationS: o.durationS, tests: o.tests.map((t) => t.id), proxies: o.proxies, workers: o.rows },
      pinning: { proxy: PROXY_CPUS, load: LOAD_CPUS },
      edgeportUnavailable,
      metrics: Object.fromEntries(o.tests.map((t) => [t.id, { title: t.title, metrics: allMetrics(t) }])),
      results: cells,
      ratios,
      ceilings,
      failover,
    };
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
    return file;
  };

  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping every process the bench started...`);
    void stopAll().finally(() => {
      if (cells.length) console.error(`Partial results: ${writeResults()}`);
      removeTmp();
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', () => {
    killAllSync();
    removeTmp();
  });


  const nginxInfo: NginxInfo = {
    streamLoadModule: tools.nginxStreamModule || null,
    runAsRoot: process.getuid?.() === 0,
  };
  const loadgen = tools.cc ? compileLoadgen(tools.cc, tmp) : '';
  const backendsNeeded = new Set<BackendId>(o.tests.flatMap((t) => t.backends));
  const backends = await startBackends(backendsNeeded, tools, loadgen, tmp, nginxInfo);

  // Runs are interleaved: round 1 of every proxy, then round 2, and so on, each run on a
  // freshly started proxy. Noise from other work on the machine then falls on every proxy
  // alike, instead of on whichever proxy ran during it (the ratios are what we compare).
  const groups = o.rows.flatMap((w) => o.tests.map((t) => ({ w, t, proxies: t.proxies.filter((p) => o.proxies.includes(p)) })));
  const estS = groups.reduce((s, g) => s + g.proxies.length * o.runs * (3 + (g.t.warmup ? 1 : 0) + o.durationS), 0);
  console.log(
    `Edgeport bench: ${o.tests.map((t) => t.id).join(', ')} | proxies ${o.proxies.join(', ')} | workers ${o.rows.join(', ')} | ` +
      `${o.runs} run(s) x ${o.durationS}s, interleaved | about ${Math.ceil(estS / 60)} min`,
  );

  for (const { w, t, proxies } of groups) {
    if (interrupted) break;
    for (const [id, b] of backends) {
      if (!b.isAlive()) throw new Error(`Backend ${id} died:\n${tail(b.output())}`);
    }
    const errors = new Map<ProxyName, string[]>();
    const groupCells = proxies.map((p) => {
      const cell: Cell = { workers: w, cpus: PROXY_CPUS[w]!, test: t.id, proxy: p, status: 'ok', runs: [], summary: {} };
      cells.push(cell);
      errors.set(p, []);
      return cell;
    });
    for (let i = 0; i < o.runs && !interrupted; i++) {
      for (const cell of groupCells) {
        if (interrupted) break;
        const p = cell.proxy;
        const label = `[${w}w] ${t.id.padEnd(9)} ${PROXY_LABEL[p].padEnd(8)}`;
        if (p === 'edgeport' && edgeportUnavailable) {
          cell.status = 'skipped';
          cell.reason = edgeportUnavailable;
          continue;
        }
        const errs = errors.get(p)!;
        let handle: ProxyHandle | null = null;
        try {
          try {
            handle = await startProxy(p, w, join(tmp, `${p}-${w}w`), tools, nginxInfo);
          } catch (err) {
            const msg = (err as Error).message;
            // never started in this bench: not runnable yet (skip it); started before: a real failure
            if (p === 'edgeport' && !edgeportStarted) {
              edgeportUnavailable = `did not start: ${msg}`;
              console.warn(`${label} Edgeport did not start; skipping it from here on:\n${msg}`);
              cell.status = 'skipped';
              cell.reason = edgeportUnavailable;
              continue;
            }
            throw err;
          }
          if (p === 'edgeport') edgeportStarted = true;
          const ctx: RunContext = { tools, loadgen, durationS: o.durationS, proxy: p, proxyPid: handle.proc.pid };
          if (t.warmup) await t.warmup(ctx);
          const cpu0 = treeCpuTimes(handle.proc.pid);
          const t0 = performance.now();
          let m: Metrics;
          try {
            m = await t.run(ctx);
          } catch (err) {
            const out = handle.proc.output().trim();
            const msg = `${(err as Error).message}${out ? `\n  ${p} output (tail):\n${tail(out, 8)}` : ''}`;
            errs.push(msg);
            if (!interrupted) console.warn(`${label} run ${i + 1} failed: ${msg}`);
            if (!handle.proc.isAlive()) errs.push(`${p} exited:\n${tail(handle.proc.output())}`);
            continue;
          }
          if (t.measureCpu) {
            const cpu1 = treeCpuTimes(handle.proc.pid);
            const userS = cpu1.user - cpu0.user;
            const sysS = cpu1.sys - cpu0.sys;
            const cpuS = userS + sysS;
            m.cpuPct = (cpuS / ((performance.now() - t0) / 1000)) * 100;
            if (t.cpuPer && m.work) {
              m[t.cpuPer.key] = (cpuS * t.cpuPer.scale) / m.work;
              if (t.cpuSplit) {
                m[`${t.cpuPer.key}User`] = (userS * t.cpuPer.scale) / m.work;
                m[`${t.cpuPer.key}Sys`] = (sysS * t.cpuPer.scale) / m.work;
              }
            }
          }
          if (!handle.proc.isAlive()) {
            errs.push(`${p} exited during run ${i + 1}:\n${tail(handle.proc.output())}`);
            continue;
          }
          cell.runs.push(m);
          console.log(`${label} run ${i + 1}/${o.runs}: ${allMetrics(t).filter((d) => d.key in m).map((d) => `${d.label} ${m[d.key]!.toFixed(d.digits)}${d.unit === '%' ? '%' : ` ${d.unit}`}`).join(', ')}`);
        } catch (err) {
          errs.push((err as Error).message);
          if (!interrupted) console.warn(`${label} failed: ${(err as Error).message}`);
        } finally {
          if (handle) await stopProxy(handle);
        }
      }
    }
    for (const cell of groupCells) {
      cell.summary = summarizeRuns(cell.runs);
      const errs = errors.get(cell.proxy)!;
      if (errs.length) cell.reason = errs.join('\n');
      if (cell.status !== 'skipped' && cell.runs.length === 0) cell.status = 'error';
    }
  }

  for (const b of backends.values()) await stop(b, 2000);

  console.log(`\nMedian (min-max) of ${o.runs} run(s) of ${o.durationS}s; proxy on core 1 (1 worker) or cores 0,1 (2 workers, shared with the load); load and backends on core 0.`);
  console.log('Ratios are Edgeport / other on the median: above 1 is better for "higher" rows, below 1 for "lower" rows.\n');
  console.log(renderTable(cells, o.tests, o.rows));
  if (busyBefore > 10) {
    console.log(`\nNote: the machine was ${busyBefore.toFixed(0)}% busy before the bench started: other work shared ` +
      'the cores, so these figures are noisy; rerun on a quiet machine for figures to compare.');
  }
  if (edgeportUnavailable) console.log(`\nEdgeport skipped: ${edgeportUnavailable.split('\n').slice(0, 6).join('\n')}`);
  const failed = cells.filter((c) => c.status === 'error');
  for (const c of failed) console.log(`\n${PROXY_LABEL[c.proxy]} ${c.test} (${c.workers} worker(s)) failed:\n${c.reason}`);
  if (o.failoverRuns > 0) {
    const skip = netnsSkipReason();
    if (skip) {
      console.log(`\nHA failover: skipped (${skip})`);
    } else {
      console.log(`\nHA failover: ${o.failoverRuns} rounds each, two appliances in network namespaces (scripts/bench/failover.ts)`);
      failover = await measureFailover(o.failoverRuns);
      console.log(failoverTable(failover));
    }
  }
  console.log(`\nResults: ${writeResults()}`);
  if (failed.length) process.exitCode = 1;
}

main().catch(async (err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  await stopAll();
  process.exit(1);
});
