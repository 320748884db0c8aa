// Process bookkeeping for the bench: every process it starts is registered here and
// killed (with its whole process group and descendants) on stop, on failure and on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isAlive(): boolean;
  output(): string; // stdout + stderr, last 64 KiB
  stdoutLines(): string[];
}

export interface StartOptions {
  cpus?: string; // taskset -c list
  stdin?: 'pipe' | 'ignore';
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const live = new Set<Proc>();

/** A timeout to race against: unref'd, so a finished bench exits without waiting it out. */
export function raceTimeout(ms: number): Promise<void> {
  return sleep(ms, undefined, { ref: false });
}
const TAIL = 64 * 1024;

export function start(name: string, cmd: string, args: readonly string[], opts: StartOptions = {}): Proc {
  const argv = opts.cpus !== undefined ? ['taskset', '-c', opts.cpus, cmd, ...args] : [cmd, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true, // own process group: we can kill it with everything it forks
    stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  let out = '';
  let stdoutBuf = '';
  const lines: string[] = [];
  const keep = (s: string): void => {
    out += s;
    if (out.length > TAIL) out = out.slice(out.length - TAIL);
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    keep(s);
    stdoutBuf += s;
    let i: number;
    while ((i = stdoutBuf.indexOf('\n')) >= 0) {
      lines.push(stdoutBuf.slice(0, i));
      stdoutBuf = stdoutBuf.slice(i + 1);
      if (lines.length > 10_000) lines.shift();
    }
  });
  child.stderr!.on('data', keep);
  let alive = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      keep(`\n[spawn error] ${err.message}\n`);
      alive = false;
      resolve({ code: 127, signal: null });
    });
    child.on('exit', (code, signal) => {
      alive = false;
      resolve({ code, signal });
    });
  });
  const proc: Proc = {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    isAlive: () => alive,
    output: () => out,
    stdoutLines: () => lines,
  };
  live.add(proc);
  return proc;
}

/** All descendant pids of pid (children, grandchildren...), read from /proc. */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number[]>();
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${ent}/stat`, 'utf8');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    const kids = parentOf.get(ppid);
    if (kids) kids.push(Number(ent));
    else parentOf.set(ppid, [Number(ent)]);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    for (const k of parentOf.get(p) ?? []) {
      out.push(k);
      stack.push(k);
    }
  }
  return out;
}

function trySignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** SIGTERM the process group, wait up to graceMs, then SIGKILL the group and any descendant left. */
export async function stop(proc: Proc, graceMs = 3000): Promise<void> {
  if (proc.pid <= 0) {
    live.delete(proc);
    return;
  }
  const tree = proc.isAlive() ? descendants(proc.pid) : [];
  if (proc.isAlive()) {
    trySignal(-proc.pid, 'SIGTERM');
    await Promise.race([proc.exited, raceTimeout(graceMs)]);
  }
  trySignal(-proc.pid, 'SIGKILL');
  for (const p of tree) trySignal(p, 'SIGKILL');
  await Promise.race([proc.exited, raceTimeout(1000)]);
  live.delete(proc);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stop(p, 1500)));
}

/** Synchronous last resort (process 'exit' handler): SIGKILL every group still registered. */
export function killAllSync(): void {
  for (const p of live) {
    if (p.pid > 0) {
      for (const d of p.isAlive() ? descendants(p.pid) : []) trySignal(d, 'SIGKILL');
      trySignal(-p.pid, 'SIGKILL');
    }
  }
  live.clear();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  output: string;
  timedOut: boolean;
}

/** Runs a command to completion, killed after timeoutMs. */
export async function run(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: StartOptions & { timeoutMs: number },
): Promise<RunResult> {
  const p = start(name, cmd, args, opts);
  let stdout = '';
  p.child.stdout!.on('data', (s: string) => {
    stdout += s;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stop(p, 500);
  }, opts.timeoutMs);
  const r = await p.exited;
  clearTimeout(timer);
  await stop(p, 500);
  return { code: r.code, signal: r.signal, stdout, output: p.output(), timedOut };
}

export function tcpConnects(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      s.destroy();
      resolve(false);
    });
  });
}

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  proc?: Proc,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && !proc.isAlive()) {
      const r = await proc.exited;
      throw new Error(
        `${proc.name} exited (code ${r.code}, signal ${r.signal}) before ${what}:\n${tail(proc.output())}`,
      );
    }
    if (await probe()) return;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${proc ? `:\n${tail(proc.output())}` : ''}`);
    }
    await sleep(50);
  }
}

export function waitTcp(host: string, port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  return waitFor(`${host}:${port} to accept`, () => tcpConnects(host, port), timeoutMs, proc);
}

export function waitHttpOk(url: string, timeoutMs: number, proc?: Proc): Promise<void> {
  return waitFor(
    `${url} to answer 200`,
    async () => {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(500) });
        await r.arrayBuffer();
        return r.status === 200;
      } catch {
        return false;
      }
    },
    timeoutMs,
    proc,
  );
}

export function tail(s: string, lines = 15): string {
  const all = s.trimEnd().split('\n');
  return all.slice(-lines).map((l) => `    | ${l}`).join('\n');
}

// ---- /proc measurements over a process tree ----

function readStatus(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** VmRSS in KiB of pid and all its descendants. */
export function treeRssKiB(pid: number): number {
  return [pid, ...descendants(pid)].reduce((sum, p) => sum + readStatus(p, 'VmRSS'), 0);
}

const CLK_TCK = 100; // USER_HZ on Linux

/** CPU seconds (all threads) used so far by pid and its descendants: user, kernel (system). */
export function treeCpuTimes(pid: number): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(rest[11]); // utime (field 14)
      sys += Number(rest[12]); // stime (field 15)
    } catch {
      /* exited */
    }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK };
}
