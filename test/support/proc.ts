// Start the real edgeport binary with a generated configuration, as a user would.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'lb/cli/edgeport');

export function tempDir(prefix = 'edgeport-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Run the CLI to completion. */
export function cli(args: string[], opts: { input?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(BIN, args, { encoding: 'utf8', input: opts.input, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A free TCP and UDP port on 127.0.0.1 (bound then released). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, host, () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dgram = await import('node:dgram');
    const ok = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, host, () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port');
}

export interface Running {
  child: ChildProcess;
  admin: string;
  lines: string[];
  /** Parsed JSON log lines. */
  logs(): Record<string, unknown>[];
  waitLog(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startEdgeport(configPath: string, adminPort: number, extra: string[] = []): Promise<Running> {
  const child = spawn(BIN, ['run', '--config', configPath, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const admin = `http://127.0.0.1:${adminPort}`;
  const logs = () =>
    lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  const r: Running = {
    child,
    admin,
    lines,
    logs,
    exited,
    async waitLog(pred, ms = 10_000) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const hit = logs().find(pred);
        if (hit) return hit;
        await new Promise((res) => setTimeout(res, 20));
      }
      throw new Error(`log line not seen within ${ms} ms; got:\n${lines.join('\n')}`);
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 40_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`edgeport exited ${child.exitCode}: ${stderr}\n${lines.join('\n')}`);
    try {
      const res = await fetch(`${admin}/readyz`);
      if (res.ok) return r;
    } catch {
      // not listening yet
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  await r.stop('SIGKILL');
  throw new Error(`edgeport not ready within 20 s: ${stderr}\n${lines.join('\n')}`);
}

export function writeConfig(dir: string, yaml: string, name = 'config.yaml'): string {
  const p = join(dir, name);
  writeFileSync(p, yaml);
  return p;
}
