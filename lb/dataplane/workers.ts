// The control plane's handle on the data plane: one Dataplane in this process (workers: 1)
// or N worker processes sharing every VIP:port through reusePort. Same interface either way;
// stats are summed across workers.

import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../core/log.ts';
import type { LogLevel, TcpEngine } from '../core/types.ts';
import { Dataplane } from './dataplane.ts';
import type { ApplyResult, BackendStats, DataplaneHooks, DataplaneStats, DesiredState, ListenerStats } from './types.ts';
import type { WorkerCall, WorkerEvent, WorkerReply, WorkerRequest } from './worker.ts';

export interface DataplaneHandle {
  readonly workers: number;
  apply(state: DesiredState): Promise<ApplyResult>;
  setBackendUp(key: string, backend: string, up: boolean): Promise<void>;
  stats(): Promise<DataplaneStats>;
  stop(drainMs: number): Promise<void>;
}

/** `auto`: one worker per CPU in this process's affinity mask. */
export function resolveWorkers(w: number | 'auto'): number {
  return w === 'auto' ? Math.max(1, availableParallelism()) : w;
}

export interface DataplaneOptions {
  workers: number;
  engine: TcpEngine;
  log: Logger;
  logLevel: LogLevel;
  pretty: boolean;
  hooks?: DataplaneHooks;
}

export function createDataplane(opts: DataplaneOptions): Promise<DataplaneHandle> {
  if (opts.workers <= 1) return Promise.resolve(new InProcess(opts.log, opts.engine, opts.hooks));
  return WorkerPool.start(opts);
}

class InProcess implements DataplaneHandle {
  readonly workers = 1;
  private readonly dp: Dataplane;
  constructor(log: Logger, engine: TcpEngine, hooks?: DataplaneHooks) {
    this.dp = new Dataplane({ log, engine, ...(hooks ? { hooks } : {}) });
  }
  apply(state: DesiredState): Promise<ApplyResult> {
    return this.dp.apply(state);
  }
  async setBackendUp(key: string, backend: string, up: boolean): Promise<void> {
    this.dp.setBackendUp(key, backend, up);
  }
  async stats(): Promise<DataplaneStats> {
    return this.dp.stats();
  }
  stop(drainMs: number): Promise<void> {
    return this.dp.stop(drainMs);
  }
}

/**
 * The V8 heap sizing flags a worker inherits from this process (lb/cli/edgeport sets the
 * young generation's size); nothing else, so --inspect or a test runner's flags stay here.
 */
export function heapFlags(execArgv: readonly string[]): string[] {
  return execArgv.filter((a) => /^--(max|min)-(semi|old)-space-size=/.test(a));
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

class Worker {
  readonly index: number;
  child!: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  ready!: Promise<void>;

  constructor(index: number) {
    this.index = index;
  }

  hooks: DataplaneHooks | undefined;

  spawn(env: NodeJS.ProcessEnv, onExit: (w: Worker, code: number | null, signal: string | null) => void): void {
    const path = fileURLToPath(new URL('./worker.ts', import.meta.url));
    this.child = fork(path, [], {
      env: { ...env, EDGEPORT_WORKER: String(this.index) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: heapFlags(process.execArgv),
    });
    this.ready = new Promise((resolve, reject) => {
      this.pending.set(0, { resolve: () => resolve(), reject });
    });
    this.child.on('message', (raw) => {
      const m = raw as WorkerReply | WorkerEvent;
      if ('event' in m) {
        if (m.event === 'connectFailure') this.hooks?.connectFailure(m.listener, m.backend, m.reason);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error));
    });
    this.child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`data plane worker ${this.index} exited`));
      this.pending.clear();
      onExit(this, code, signal);
    });
  }

  call<T>(req: WorkerCall): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...req, id } as WorkerRequest, (err) => {
        if (err) {
          this.pending.delete(id);
          reject(err);
        }
      });
    });
  }
}

class WorkerPool implements DataplaneHandle {
  readonly workers: number;
  private readonly ws: Worker[] = [];
  private readonly log: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private last: DesiredState | undefined;
  private readonly down = new Map<string, boolean>();
  private stopping = false;

  private constructor(opts: DataplaneOptions) {
    this.workers = opts.workers;
    this.log = opts.log;
    this.env = { ...process.env, EDGEPORT_LOG_LEVEL: opts.logLevel, EDGEPORT_LOG_PRETTY: opts.pretty ? '1' : '0', EDGEPORT_TCP_ENGINE: opts.engine };
  }

  static async start(opts: DataplaneOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    for (let i = 0; i < opts.workers; i++) {
      const w = new Worker(i);
      w.hooks = opts.hooks;
      w.spawn(pool.env, (wk, code, signal) => pool.onExit(wk, code, signal));
      pool.ws.push(w);
    }
    try {
      await Promise.all(pool.ws.map((w) => w.ready));
    } catch (err) {
      // One worker could not start: end the others rather than leave them (and respawning) behind.
      await pool.stop(0);
      throw err;
    }
    return pool;
  }

  /** A worker that dies is replaced and given the last state, so its share of traffic returns. */
  private onExit(w: Worker, code: number | null, signal: string | null): void {
    if (this.stopping) return;
    this.log.error('data plane worker exited; restarting it', { code: 'EDGEPORT_ERR_WORKER_EXIT', worker: w.index, exitCode: code, signal });
    setTimeout(() => {
      if (this.stopping) return;
      w.spawn(this.env, (wk, c, s) => this.onExit(wk, c, s));
      void w.ready
        .then(async () => {
          if (this.last) await w.call({ op: 'apply', arg: this.last });
          for (const [k, up] of this.down) {
            const [key, backend] = JSON.parse(k) as [string, string];
            await w.call({ op: 'setUp', arg: { key, backend, up } });
          }
        })
        .catch((err: unknown) => this.log.error('could not restore a restarted worker', { worker: w.index, err }));
    }, 200);
  }

  async apply(state: DesiredState): Promise<ApplyResult> {
    this.last = state;
    const results = await Promise.all(this.ws.map((w) => w.call<ApplyResult>({ op: 'apply', arg: state })));
    // A listener is up only when every worker has it.
    const failed = new Map<string, ApplyResult['failed'][number]>();
    for (const r of results) for (const f of r.failed) if (!failed.has(f.key)) failed.set(f.key, f);
    const up = state.listeners.map((l) => l.key).filter((k) => !failed.has(k));
    return { up, failed: [...failed.values()] };
  }

  async setBackendUp(key: string, backend: string, up: boolean): Promise<void> {
    const k = JSON.stringify([key, backend]);
    if (up) this.down.delete(k);
    else this.down.set(k, false);
    await Promise.all(this.ws.map((w) => w.call({ op: 'setUp', arg: { key, backend, up } }).catch(() => undefined)));
  }

  async stats(): Promise<DataplaneStats> {
    const all = await Promise.all(this.ws.map((w) => w.call<DataplaneStats>({ op: 'stats' }).catch(() => ({ listeners: [] }))));
    return mergeStats(all);
  }

  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.ws.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            w.child.once('exit', () => resolve());
            w.call({ op: 'stop', arg: { drainMs } }).catch(() => undefined);
            setTimeout(() => w.child.kill('SIGKILL'), drainMs + 2000).unref();
          }),
      ),
    );
  }
}

/** Sum per-worker stats by listener and backend. */
export function mergeStats(parts: DataplaneStats[]): DataplaneStats {
  const ls = new Map<string, ListenerStats>();
  for (const part of parts) {
    for (const l of part.listeners) {
      const have = ls.get(l.key);
      if (!have) {
        ls.set(l.key, { ...l, backends: l.backends.map((b) => ({ ...b })) });
        continue;
      }
      have.bytesRx += l.bytesRx;
      have.bytesTx += l.bytesTx;
      have.udpSessionsActive += l.udpSessionsActive;
      have.limitRejected += l.limitRejected;
      have.noBackend += l.noBackend;
      const bs = new Map<string, BackendStats>(have.backends.map((b) => [b.id, b]));
      for (const b of l.backends) {
        const hb = bs.get(b.id);
        if (!hb) {
          have.backends.push({ ...b });
          continue;
        }
        hb.active += b.active;
        hb.total += b.total;
        hb.connectFailures += b.connectFailures;
      }
    }
  }
  return { listeners: [...ls.values()] };
}
