// Entry point of a data plane worker process (forked by workers.ts). It runs one Dataplane
// and answers the control plane's messages; signals are for the main process only, so it
// ignores SIGINT/SIGTERM/SIGHUP (a terminal's Ctrl-C reaches the whole process group) and
// exits when its parent tells it to or goes away.

import { createLogger } from '../core/log.ts';
import type { LogLevel, TcpEngine } from '../core/types.ts';
import { Dataplane } from './dataplane.ts';
import type { DesiredState } from './types.ts';

export type WorkerRequest =
  | { id: number; op: 'apply'; arg: DesiredState }
  | { id: number; op: 'stats' }
  | { id: number; op: 'setUp'; arg: { key: string; backend: string; up: boolean } }
  | { id: number; op: 'stop'; arg: { drainMs: number } };

/** A request before it gets its id. */
export type WorkerCall = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

/** Unsolicited news from a worker (no id). */
export type WorkerEvent = { event: 'connectFailure'; listener: string; backend: string; reason: string };

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

const index = Number(process.env.EDGEPORT_WORKER ?? 0);
const log = createLogger({
  level: (process.env.EDGEPORT_LOG_LEVEL as LogLevel | undefined) ?? 'info',
  pretty: process.env.EDGEPORT_LOG_PRETTY === '1',
  base: { worker: index },
});
const dp = new Dataplane({
  log,
  engine: (['net', 'raw'] as const).find((e) => e === process.env.EDGEPORT_TCP_ENGINE) ?? ('epoll' satisfies TcpEngine),
  hooks: {
    connectFailure: (listener, backend, reason) => process.send?.({ event: 'connectFailure', listener, backend, reason } satisfies WorkerEvent),
  },
});

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => {});
process.on('disconnect', () => process.exit(0));

process.on('message', (raw) => {
  const req = raw as WorkerRequest;
  void handle(req).then(
    (result) => process.send?.({ id: req.id, ok: true, result } satisfies WorkerReply),
    (err: unknown) => process.send?.({ id: req.id, ok: false, error: String((err as Error)?.message ?? err) } satisfies WorkerReply),
  );
});

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'apply':
      return dp.apply(req.arg);
    case 'stats':
      return dp.stats();
    case 'setUp':
      return dp.setBackendUp(req.arg.key, req.arg.backend, req.arg.up);
    case 'stop':
      await dp.stop(req.arg.drainMs);
      setImmediate(() => process.exit(0));
      return true;
  }
}

process.send?.({ id: 0, ok: true, result: 'ready' } satisfies WorkerReply);
