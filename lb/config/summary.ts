// The short summary `edgeport check` prints for a valid configuration. Pure.

import type { Config } from '../core/types.ts';
import { parsePoolEntry, poolSize } from '../ipam/address.ts';
import type { IpRange } from '../ipam/address.ts';

function plural(n: number | bigint, word: string): string {
  return `${n} ${word}${n === 1 || n === 1n ? '' : 's'}`;
}

function table(rows: string[][], indent: string): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

/**
 * A few readable lines: the node, pools with their sizes, and each service with its VIP or
 * pool and its ports as `port/protocol scheduler, N backends`. Ends with a newline.
 */
export function summarize(cfg: Config): string {
  const lines: string[] = [];
  const announce = cfg.announce.mode === 'arp' ? `arp on ${cfg.announce.interface ?? '?'}` : 'none';
  const k8s = cfg.kubernetes.enabled ? `on (class ${cfg.kubernetes.loadBalancerClass})` : 'off';
  lines.push(`node ${cfg.node.name}: announce ${announce}, kubernetes ${k8s}, ha ${cfg.ha.enabled ? 'on' : 'off'}`);

  lines.push(cfg.pools.length ? `pools (${cfg.pools.length}):` : 'pools: none');
  lines.push(
    ...table(
      cfg.pools.map((p) => {
        const ranges = p.addresses.map(parsePoolEntry).flatMap((r): IpRange[] => (r.ok ? [r.range] : []));
        const flags = [p.autoAssign ? '' : 'on request only', p.avoidBuggyIPs ? 'avoids .0/.255' : ''].filter(Boolean);
        const size = poolSize(ranges, p.avoidBuggyIPs);
        const sizeText = `${size} address${size === 1n ? '' : 'es'}`;
        return [p.name, sizeText, p.addresses.join(', ') + (flags.length ? ` (${flags.join(', ')})` : '')];
      }),
      '  ',
    ),
  );

  lines.push(cfg.services.length ? `services (${cfg.services.length}):` : 'services: none');
  lines.push(
    ...table(
      cfg.services.map((s) => [
        s.name,
        s.address ?? `pool ${s.pool ?? '?'}`,
        s.ports.map((p) => `${p.port}/${p.protocol} ${p.scheduler} ${plural(p.backends.length, 'backend')}`).join(', '),
      ]),
      '  ',
    ),
  );
  return `${lines.join('\n')}\n`;
}
