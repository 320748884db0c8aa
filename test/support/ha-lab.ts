// A layer-2 HA lab in network namespaces, for test/e2e/ha.test.ts and the failover benchmark
// (scripts/bench/failover.ts): one bridge namespace joins
//   api     .2   the fake API server (fake-apiserver-main.ts), the Lease store
//   node    .3   a backend on :30080 (a NodePort) that answers with the address it was reached from
//   client  .4   the client (connect loops, arping, its neighbour table)
//   edge-N  .11+ the real edgeport binary with announce.mode arp and ha.enabled
// Every address lives in a namespace the lab created; cleanup() removes them all.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, ip, nsExec, uniqueName } from './netns.ts';
import { BIN, tempDir, writeConfig } from './proc.ts';
import { kubeconfigYaml } from './kubeconfig.ts';
import { preferredOf } from '../../lb/ha/lease.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const API_MAIN = fileURLToPath(new URL('./fake-apiserver-main.ts', import.meta.url));
const IFACE = 'lan0';
export const API_PORT = 6443;
export const BACKEND_PORT = 30080;

/** edge-a, edge-b, ... */
export function applianceName(i: number): string {
  return `edge-${String.fromCharCode(97 + i)}`;
}

/** Wall clock with sub-millisecond precision, comparable across processes on one host. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

export interface Appliance {
  name: string;
  ns: string;
  addr: string;
  mac: string;
  configPath: string;
  child: ChildProcess | undefined;
  out: string;
}

export interface Attempt {
  /** Wall clock (ms) when the connect started and when it ended. */
  start: number;
  end: number;
  /** The appliance address the backend saw, when it succeeded. */
  via?: string;
  error?: string;
}

export interface HaLabOptions {
  appliances: number;
  vips: number;
  /** A /24 prefix such as 10.233.7. */
  subnet: string;
  ha?: { leaseDuration?: string; renewInterval?: string; holdDown?: string };
}

export class HaLab {
  readonly subnet: string;
  readonly vips: string[];
  readonly appliances: Appliance[] = [];
  api!: Agent;
  /** An agent in the client namespace (ARP frames, captures). */
  client!: Agent;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly tmp = tempDir();
  readonly ns: { br: string; api: string; node: string; client: string };

  private constructor(opts: HaLabOptions) {
    this.subnet = opts.subnet;
    // VIPs whose preferred owners (rendezvous over the appliance names) take turns, so the
    // spread is visible whatever the subnet.
    const names = Array.from({ length: opts.appliances }, (_, i) => applianceName(i));
    const hosts = Array.from({ length: 50 }, (_, i) => `${opts.subnet}.${50 + i}`);
    this.vips = [];
    for (let i = 0; i < opts.vips; i++) {
      const want = names[i % names.length];
      const at = hosts.findIndex((h) => preferredOf(h, names) === want);
      this.vips.push(hosts.splice(at >= 0 ? at : 0, 1)[0]!);
    }
    this.ns = { br: uniqueName('br'), api: uniqueName('api'), node: uniqueName('node'), client: uniqueName('cl') };
  }

  static async create(opts: HaLabOptions): Promise<HaLab> {
    const lab = new HaLab(opts);
    try {
      await lab.build(opts);
    } catch (e) {
      await lab.cleanup();
      throw e;
    }
    return lab;
  }

  private async addMember(ns: string, index: number, addr: string): Promise<string> {
    await ip(['netns', 'add', ns]);
    this.namespaces.push(ns);
    await ip(['-n', this.ns.br, 'link', 'add', `v${index}`, 'type', 'veth', 'peer', 'name', IFACE, 'netns', ns]);
    await ip(['-n', this.ns.br, 'link', 'set', `v${index}`, 'master', 'br0', 'up']);
    await ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', IFACE]);
    await ip(['-n', ns, 'link', 'set', IFACE, 'up']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    const link = await ip(['-n', ns, 'link', 'show', IFACE]);
    return /link\/ether ([0-9a-f:]{17})/.exec(link)![1]!;
  }

  private async build(opts: HaLabOptions): Promise<void> {
    const s = this.subnet;
    await ip(['netns', 'add', this.ns.br]);
    this.namespaces.push(this.ns.br);
    await ip(['-n', this.ns.br, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', this.ns.br, 'link', 'set', 'br0', 'up']);
    await this.addMember(this.ns.api, 2, `${s}.2`);
    await this.addMember(this.ns.node, 3, `${s}.3`);
    await this.addMember(this.ns.client, 4, `${s}.4`);

    this.api = new Agent(this.ns.api, API_MAIN, [`${s}.2`, String(API_PORT), 'edgeport-system']);
    await this.api.call('url', {}, 15_000);
    this.client = new Agent(this.ns.client);
    const backend = spawn('ip', ['netns', 'exec', this.ns.node, process.execPath, '--input-type=module', '-e', `
      import net from 'node:net';
      net.createServer((c) => { c.on('error', () => {}); c.end(c.remoteAddress.replace('::ffff:', '') + '\\n'); })
        .listen(${BACKEND_PORT}, '${s}.3', () => console.log('up'));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(backend);
    await new Promise((r) => backend.stdout!.once('data', r));

    const kubeconfig = join(this.tmp.dir, 'kubeconfig');
    writeFileSync(kubeconfig, kubeconfigYaml(`http://${s}.2:${API_PORT}`));
    const ha = { leaseDuration: '1500ms', renewInterval: '300ms', holdDown: '2s', ...opts.ha };
    for (let i = 0; i < opts.appliances; i++) {
      const name = applianceName(i);
      const ns = uniqueName('ed');
      const addr = `${s}.${11 + i}`;
      const mac = await this.addMember(ns, 11 + i, addr);
      const dir = join(this.tmp.dir, name);
      mkdirSync(dir, { recursive: true });
      const configPath = writeConfig(
        dir,
        `node: { name: ${name} }
announce: { mode: arp, interface: ${IFACE} }
admin: { listen: 127.0.0.1:9470 }
state: { dir: ${dir}/state }
dataplane: { workers: 1 }
kubernetes: { enabled: true, kubeconfig: ${kubeconfig}, nodeHealthCheck: { type: tcp, port: ${BACKEND_PORT} } }
ha: { enabled: true, leaseNamespace: edgeport-system, leaseDuration: ${ha.leaseDuration}, renewInterval: ${ha.renewInterval}, holdDown: ${ha.holdDown} }
defaults: { healthCheck: { interval: 500ms, timeout: 300ms, rise: 1, fall: 2 } }
pools: [ { name: lab, addresses: [ ${s}.100-${s}.110 ] } ]
services:
${this.vips.map((v, j) => `  - name: web${j}
    address: ${v}
    ports: [ { port: 80, protocol: TCP, backends: [ { address: ${s}.3, port: ${BACKEND_PORT} } ] } ]`).join('\n')}
`,
      );
      this.appliances.push({ name, ns, addr, mac, configPath, child: undefined, out: '' });
    }
  }

  /** Starts (or restarts) an appliance's edgeport. */
  start(a: Appliance): void {
    const child = spawn('ip', ['netns', 'exec', a.ns, BIN, 'run', '--config', a.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    a.child = child;
    a.out = '';
    child.stdout!.on('data', (d: Buffer) => (a.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (a.out += d.toString()));
    this.children.push(child);
  }

  /** GET an admin path inside the appliance's namespace. */
  async admin<T>(a: Appliance, path: string): Promise<{ status: number; body: T | string }> {
    const r = await nsExec(a.ns, process.execPath, ['--input-type=module', '-e', `
      try { const r = await fetch('http://127.0.0.1:9470${path}'); const t = await r.text();
        let b; try { b = JSON.parse(t); } catch { b = t; } console.log(JSON.stringify({ status: r.status, body: b })); }
      catch (e) { console.log(JSON.stringify({ status: 0, body: String(e) })); }`]);
    return JSON.parse(r.stdout) as { status: number; body: T | string };
  }

  async waitReady(a: Appliance, ms = 30_000): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if ((await this.admin(a, '/readyz')).status === 200) return;
      if (a.child && a.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${a.name} not ready:\n${a.out}`);
  }

  /** VIP -> holder of its Lease in the API server ('' free, undefined none). */
  async holders(): Promise<Map<string, string>> {
    const list = await this.api.call<{ metadata: { name: string }; spec?: { holderIdentity?: string } }[]>('list', { resource: 'leases', namespace: 'edgeport-system' });
    const m = new Map<string, string>();
    for (const l of list) {
      const v = /^edgeport-vip-(\d+)-(\d+)-(\d+)-(\d+)$/.exec(l.metadata.name);
      if (v) m.set(v.slice(1).join('.'), l.spec?.holderIdentity ?? '');
    }
    return m;
  }

  /** The MACs that answer an ARP request for `vip` from the client (arping, 2 requests). */
  async arpers(vip: string): Promise<string[]> {
    const r = await nsExec(this.ns.client, 'arping', ['-I', IFACE, '-c', '2', '-w', '3', vip], 10_000);
    const macs = new Set<string>();
    for (const m of r.stdout.matchAll(/\[([0-9A-Fa-f:]{17})\]/g)) macs.add(m[1]!.toLowerCase());
    return [...macs].sort();
  }

  /** The client's neighbour entry for `vip`: its MAC, or undefined. */
  async neighbour(vip: string): Promise<string | undefined> {
    const out = await ip(['-n', this.ns.client, 'neigh', 'show', vip]);
    return /lladdr ([0-9a-f:]{17})/.exec(out)?.[1];
  }

  byMac(mac: string | undefined): Appliance | undefined {
    return this.appliances.find((a) => a.mac === mac);
  }

  byAddr(addr: string | undefined): Appliance | undefined {
    return this.appliances.find((a) => a.addr === addr);
  }

  /**
   * From the client: a new TCP connection to vip:80 every `everyMs` (each with a 1.5 s
   * timeout), until stop(). Every attempt is reported with its times and the appliance address
   * the backend saw.
   */
  connectLoop(vip: string, everyMs = 100): { attempts: Attempt[]; stop(): Promise<Attempt[]> } {
    const child = spawn('ip', ['netns', 'exec', this.ns.client, process.execPath, '--input-type=module', '-e', `
      import net from 'node:net';
      const now = () => performance.timeOrigin + performance.now();
      const one = () => {
        const start = now();
        const s = net.connect({ host: '${vip}', port: 80 });
        let done = false;
        const finish = (r) => { if (done) return; done = true; clearTimeout(t); s.destroy(); console.log(JSON.stringify({ start, end: now(), ...r })); };
        const t = setTimeout(() => finish({ error: 'timeout' }), 1500);
        let buf = '';
        s.on('data', (d) => { buf += d; if (buf.includes('\\n')) finish({ via: buf.trim() }); });
        s.on('error', (e) => finish({ error: e.code }));
        s.on('end', () => finish(buf ? { via: buf.trim() } : { error: 'closed' }));
      };
      const timer = setInterval(one, ${everyMs});
      one();
      process.stdin.on('data', () => {}).on('end', () => { clearInterval(timer); setTimeout(() => process.exit(0), 1600); });
    `], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.children.push(child);
    const attempts: Attempt[] = [];
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          attempts.push(JSON.parse(line) as Attempt);
        } catch {
          /* not ours */
        }
      }
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    return {
      attempts,
      async stop() {
        child.stdin!.end();
        await exited;
        return attempts.sort((a, b) => a.start - b.start);
      },
    };
  }

  /** Polls until `f` holds (or throws with `what`). */
  async waitFor<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, ms = 10_000): Promise<T> {
    const until = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${this.appliances.map((a) => `--- ${a.name}\n${a.out.split('\n').slice(-30).join('\n')}`).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async cleanup(): Promise<void> {
    for (const c of this.children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await this.api?.kill().catch(() => {});
    await this.client?.kill().catch(() => {});
    // Give killed edgeports a moment to let go of their namespaces' sockets.
    await new Promise((r) => setTimeout(r, 100));
    for (const ns of this.namespaces.splice(0).reverse()) await ip(['netns', 'del', ns]).catch(() => {});
    this.tmp.cleanup();
  }
}

/** Kills every process inside a namespace (for crash tests: the data plane workers too). */
export function killNamespace(ns: string): Promise<void> {
  return new Promise((resolve) => execFile('ip', ['netns', 'pids', ns], (err, out) => {
    if (!err) for (const pid of String(out).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    resolve();
  }));
}
