// The fake API server as a process of its own, so that it can run inside a network namespace
// (test/support/ha-lab.ts): `node fake-apiserver-main.ts HOST PORT [NAMESPACE ...]`. It speaks
// the Agent protocol of test/support/netns.ts: one JSON command a line on stdin
// ({id, cmd, args}), one answer a line on stdout ({id, ok, value} or {id, ok: false, error}).
// Commands: url, stop, start, get {resource, name, namespace}, list {resource, namespace},
// put {obj}. The process exits when stdin closes.

import { createInterface } from 'node:readline';
import { FakeApiServer } from './fake-apiserver.ts';

const [host = '127.0.0.1', port = '0', ...namespaces] = process.argv.slice(2);
const api = new FakeApiServer({ host, port: Number(port), bookmarkIntervalMs: 1000 });
for (const name of namespaces) api.objects.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name }, status: { phase: 'Active' } });

type Args = { resource: string; name: string; namespace?: string; obj: Record<string, unknown> };
const commands: Record<string, (a: Args) => unknown> = {
  url: () => api.url,
  stop: () => api.stop().then(() => true),
  start: () => api.start(),
  get: (a) => api.objects.get(a.resource, a.name, a.namespace) ?? null,
  list: (a) => api.objects.list(a.resource, a.namespace),
  put: (a) => api.objects.put(a.obj as never),
};

await api.start();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    let m: { id: number; cmd: string; args: Args };
    try {
      m = JSON.parse(line) as typeof m;
    } catch {
      return;
    }
    Promise.resolve()
      .then(() => {
        const f = commands[m.cmd];
        if (!f) throw new Error(`unknown command ${m.cmd}`);
        return f(m.args);
      })
      .then(
        (value) => process.stdout.write(JSON.stringify({ id: m.id, ok: true, value }) + '\n'),
        (err: unknown) => process.stdout.write(JSON.stringify({ id: m.id, ok: false, error: String((err as Error)?.message ?? err) }) + '\n'),
      );
  })
  .on('close', () => {
    void api.stop().then(() => process.exit(0));
  });
