// Network namespaces for the layer-2 tests: create them, join them with a veth pair, run an
// agent process (netns-agent.ts) inside one, and remove everything afterwards. Traffic stays
// inside namespaces the test created. Names are unique per run: ep-<pid>-<n>.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const AGENT = fileURLToPath(new URL('./netns-agent.ts', import.meta.url));
let seq = 0;

/** Why namespace tests cannot run here, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root (ip netns add, AF_PACKET sockets)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'the ip command (iproute2) with netns support is missing';
  }
  return undefined;
}

export function uniqueName(tag: string): string {
  return `ep-${process.pid}-${tag}${seq++}`;
}

export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', [...args], { timeout: 10_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`ip ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(String(stdout)),
    );
  });
}

/** Runs a command inside a namespace (no shell). Resolves with exit code and output. */
export function nsExec(ns: string, cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Run a small ES module inside a namespace with this Node; returns its stdout, parsed as JSON. */
export async function inNs<T>(ns: string, js: string, timeoutMs = 10_000): Promise<T> {
  const r = await nsExec(ns, process.execPath, ['--input-type=module', '-e', js], timeoutMs);
  if (r.code !== 0) throw new Error(`node in ${ns} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A module for inNs: connect to host:port and print {got: first bytes} or {error: code}. */
export const connectJs = (host: string, port: number): string => `
import net from 'node:net';
const s = net.connect({ host: '${host}', port: ${port} });
const t = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(0); }, 3000);
s.on('data', (d) => { clearTimeout(t); console.log(JSON.stringify({ got: d.toString().trim() })); s.destroy(); });
s.on('error', (e) => { clearTimeout(t); console.log(JSON.stringify({ error: e.code })); });
`;

export interface Lan {
  /** Edgeport's namespace and its interface. */
  edge: { ns: string; iface: string; addr: string };
  client: { ns: string; iface: string; addr: string };
  /** Deletes both namespaces (the veth pair goes with them). Safe to call twice. */
  cleanup(): Promise<void>;
}

/**
 * Two namespaces joined by a veth pair, `subnet` a /24 prefix such as "10.231.7": the edge
 * side gets .1, the client .2. lo is up in both.
 */
export async function createLan(subnet: string): Promise<Lan> {
  const edgeNs = uniqueName('e');
  const clientNs = uniqueName('c');
  const made: string[] = [];
  const cleanup = async () => {
    for (const ns of made.splice(0)) await ip(['netns', 'del', ns]).catch(() => {});
  };
  try {
    for (const ns of [edgeNs, clientNs]) {
      await ip(['netns', 'add', ns]);
      made.push(ns);
    }
    await ip(['-n', edgeNs, 'link', 'add', 'epA', 'type', 'veth', 'peer', 'name', 'epB', 'netns', clientNs]);
    await ip(['-n', edgeNs, 'addr', 'add', `${subnet}.1/24`, 'dev', 'epA']);
    await ip(['-n', clientNs, 'addr', 'add', `${subnet}.2/24`, 'dev', 'epB']);
    for (const [ns, dev] of [[edgeNs, 'epA'], [clientNs, 'epB'], [edgeNs, 'lo'], [clientNs, 'lo']] as const) await ip(['-n', ns, 'link', 'set', dev, 'up']);
  } catch (e) {
    await cleanup();
    throw e;
  }
  return {
    edge: { ns: edgeNs, iface: 'epA', addr: `${subnet}.1` },
    client: { ns: clientNs, iface: 'epB', addr: `${subnet}.2` },
    cleanup,
  };
}

/**
 * An agent process inside a namespace; call() sends one command and awaits its answer.
 * `script` speaks the same JSON-lines protocol (default: netns-agent.ts).
 */
export class Agent {
  readonly ns: string;
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  stderr = '';

  constructor(ns: string, script = AGENT, args: readonly string[] = []) {
    this.ns = ns;
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let m: { id: number; ok: boolean; value?: unknown; error?: string };
      try {
        m = JSON.parse(line) as typeof m;
      } catch {
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(`agent in ${ns}: ${m.error}`));
    });
    this.child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`agent in ${ns} exited (${code ?? signal}): ${this.stderr.trim()}`));
      this.pending.clear();
    });
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent in ${this.ns}: ${cmd} timed out after ${timeoutMs} ms; stderr: ${this.stderr.trim()}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.stdin!.write(JSON.stringify({ id, cmd, args }) + '\n');
    });
  }

  /** Kills the agent (SIGKILL after a polite exit does not happen within 2 s). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
