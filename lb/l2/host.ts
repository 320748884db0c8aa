// VIPs on the host: the sysctls that keep the kernel from answering ARP for them, and the
// local routes that make the kernel accept their traffic (`ip route add local VIP/32 dev lo`).
//
// Routes Edgeport adds carry `proto 237` (EDGEPORT_ROUTE_PROTO), so Edgeport removes only
// what it added, and can find what a crashed run left behind (removeStale). A local route
// for the VIP that someone else made is used as it is and never removed.

import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { parseIp } from '../ipam/address.ts';

/** Routing protocol number on Edgeport's routes (unassigned in /etc/iproute2/rt_protos). */
export const EDGEPORT_ROUTE_PROTO = 237;

export interface SysctlProblem {
  /** e.g. "net.ipv4.conf.eth0.arp_ignore" */
  name: string;
  /** The effective value now (the kernel uses the larger of conf/all and conf/IFACE), or undefined when unreadable. */
  value: number | undefined;
  want: number;
  /** The command that sets it. */
  fix: string;
  /** One line for the log or the refusal to start. */
  message: string;
}

const WANT = [
  { key: 'arp_ignore', want: 1, ok: (v: number) => v >= 1 && v <= 8 },
  { key: 'arp_announce', want: 2, ok: (v: number) => v === 2 },
] as const;

/** sysctl(8) writes "/" for "." inside an interface name (VLAN eth0.100 -> eth0/100). */
function sysctlName(iface: string, key: string): string {
  return `net.ipv4.conf.${iface.replaceAll('.', '/')}.${key}`;
}

function procPath(iface: string, key: string): string {
  return `/proc/sys/net/ipv4/conf/${iface}/${key}`;
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function checkName(iface: string): void {
  if (!/^[^/\s]{1,15}$/.test(iface) || iface === '.' || iface === '..') throw new TypeError(`Cannot check sysctls for "${iface}": not an interface name`);
}

/** The ARP sysctls on `iface` that are not as Edgeport needs them (empty: all good). */
export async function checkSysctls(iface: string): Promise<SysctlProblem[]> {
  checkName(iface);
  const out: SysctlProblem[] = [];
  for (const w of WANT) {
    const own = await readNumber(procPath(iface, w.key));
    const all = await readNumber(procPath('all', w.key));
    const value = own === undefined ? undefined : Math.max(own, all ?? 0);
    if (value !== undefined && w.ok(value)) continue;
    const name = sysctlName(iface, w.key);
    const fix = `sysctl -w ${name}=${w.want}`;
    const now = own === undefined ? `cannot be read (does interface "${iface}" exist?)` : `is ${value}`;
    out.push({ name, value, want: w.want, fix, message: `sysctl ${name} ${now}, want ${w.want}; set it with: ${fix}` });
  }
  return out;
}

/**
 * Sets the ARP sysctls on `iface` where it may. Returns what it changed and what is still
 * wrong; the caller refuses to start when `problems` is not empty, printing each message.
 */
export async function ensureSysctls(iface: string): Promise<{ changed: string[]; problems: SysctlProblem[] }> {
  const changed: string[] = [];
  for (const p of await checkSysctls(iface)) {
    const key = p.name.slice(p.name.lastIndexOf('.') + 1);
    try {
      await writeFile(procPath(iface, key), `${p.want}\n`);
      changed.push(`${p.name}=${p.want}`);
    } catch {
      // Reported by the check below.
    }
  }
  return { changed, problems: await checkSysctls(iface) };
}

/** Runs `ip` with arguments (no shell); rejects with stderr in the message. Injectable for tests. */
export type IpRunner = (args: readonly string[]) => Promise<string>;

export const runIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile('ip', [...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(new Error(`ip ${args.join(' ')}: ${String(stderr).trim() || err.message}`), { stderr: String(stderr) }));
      else resolve(String(stdout));
    });
  });

function routeArgs(vip: string): string[] {
  const ip = parseIp(vip);
  if (!ip) throw new TypeError(`Cannot make "${vip}" local: not an IP address`);
  return ip.family === 4 ? ['-4', 'route', '%', 'local', `${vip}/32`, 'dev', 'lo'] : ['-6', 'route', '%', 'local', `${vip}/128`, 'dev', 'lo'];
}

function cmd(vip: string, verb: string, extra: string[] = []): string[] {
  return routeArgs(vip).map((a) => (a === '%' ? verb : a)).concat(extra);
}

/** Local routes for VIPs on lo, remembering which ones Edgeport added. */
export class LocalVips {
  private readonly run: IpRunner;
  private readonly added = new Set<string>();

  constructor(opts: { run?: IpRunner } = {}) {
    this.run = opts.run ?? runIp;
  }

  /** The VIPs whose route Edgeport added (and will remove). */
  get ours(): string[] {
    return [...this.added];
  }

  /**
   * Makes `vip` local. Idempotent: an existing local route is kept; it becomes Edgeport's to
   * remove only if it carries Edgeport's proto (left by an earlier run).
   */
  async addLocal(vip: string): Promise<void> {
    if (this.added.has(vip)) return;
    routeArgs(vip); // TypeError for a non-address, before anything runs
    try {
      await this.run(cmd(vip, 'add', ['proto', String(EDGEPORT_ROUTE_PROTO)]));
      this.added.add(vip);
    } catch (e) {
      if (!/File exists/i.test((e as Error).message)) throw new Error(`Cannot make ${vip} local: ${(e as Error).message}`, { cause: e });
      // `ip route show` takes no route type: select by table, exact prefix, device and proto.
      const [fam, , , , prefix] = routeArgs(vip);
      const shown = await this.run([fam!, 'route', 'show', 'table', 'local', 'exact', prefix!, 'dev', 'lo', 'proto', String(EDGEPORT_ROUTE_PROTO)]);
      if (shown.trim() !== '') this.added.add(vip);
    }
  }

  /** Removes the local route for `vip` if Edgeport added it; otherwise does nothing. */
  async removeLocal(vip: string): Promise<void> {
    if (!this.added.has(vip)) return;
    try {
      await this.run(cmd(vip, 'del', ['table', 'local', 'proto', String(EDGEPORT_ROUTE_PROTO)]));
    } catch (e) {
      if (!/No such process|Cannot find/i.test((e as Error).message)) throw new Error(`Cannot remove the local route for ${vip}: ${(e as Error).message}`, { cause: e });
    }
    this.added.delete(vip);
  }

  /** Removes every route Edgeport added (SIGTERM, after the drain). Tries all; throws the first failure. */
  async removeAll(): Promise<void> {
    let first: unknown;
    for (const v of [...this.added]) {
      try {
        await this.removeLocal(v);
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }

  /** Removes Edgeport's routes on lo that are not in `keep` (what a crashed run left behind). Returns them. */
  async removeStale(keep: readonly string[] = []): Promise<string[]> {
    const removed: string[] = [];
    for (const fam of ['-4', '-6']) {
      const out = await this.run([fam, 'route', 'show', 'table', 'local', 'dev', 'lo', 'proto', String(EDGEPORT_ROUTE_PROTO)]);
      for (const line of out.split('\n')) {
        const m = /^local\s+([0-9a-fA-F:.]+?)(?:\/(?:32|128))?\s/.exec(line + ' ');
        if (!m || keep.includes(m[1]!) || this.added.has(m[1]!)) continue;
        this.added.add(m[1]!);
        await this.removeLocal(m[1]!);
        removed.push(m[1]!);
      }
    }
    return removed;
  }
}
