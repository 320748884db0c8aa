// `edgeport status` as a readable table. Pure.

import type { StatusDoc } from '../admin/status.ts';

/** "edge-a", or with HA "edge-a 12s (prefers edge-b)": who serves the VIP, for how long. */
function ownerText(s: StatusDoc['services'][number]): string {
  if (!s.vip) return '-';
  let t = s.owner ?? '-';
  if (s.owner && typeof s.leaseAgeMs === 'number') t += ` ${formatAge(s.leaseAgeMs)}${s.leaseExpired ? ' EXPIRED' : ''}`;
  if (s.preferredOwner && s.preferredOwner !== s.owner) t += ` (prefers ${s.preferredOwner})`;
  return t;
}

function formatAge(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec < 120) return `${sec}s`;
  if (sec < 7200) return `${Math.floor(sec / 60)}m`;
  return `${Math.floor(sec / 3600)}h`;
}

export function formatStatusTable(doc: StatusDoc): string {
  const rows: string[][] = [['SERVICE', 'VIP', 'OWNER', 'PORT', 'SCHED', 'BACKEND', 'HEALTH', 'ACTIVE', 'TOTAL']];
  for (const s of doc.services) {
    const owner = ownerText(s);
    if (s.ports.length === 0) rows.push([s.name, s.vip ?? `(pool ${s.pool ?? '?'})`, owner, '-', '-', '-', '-', '-', '-']);
    for (const p of s.ports) {
      const port = `${p.port}/${p.protocol}${p.listening ? '' : ' (not bound)'}`;
      if (p.backends.length === 0) rows.push([s.name, s.vip ?? '-', owner, port, p.scheduler, '-', '-', '-', '-']);
      p.backends.forEach((b, i) => {
        const first = i === 0;
        const addr = b.address.includes(':') ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`;
        const health = b.draining ? 'draining' : b.up ? 'up' : 'DOWN';
        rows.push([
          first ? s.name : '',
          first ? (s.vip ?? '-') : '',
          first ? owner : '',
          first ? port : '',
          first ? p.scheduler : '',
          b.weight !== 1 ? `${addr} (w${b.weight})` : addr,
          health,
          String(b.active),
          String(b.total),
        ]);
      });
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
  const head = `node ${doc.node}: ${doc.ready ? 'ready' : 'NOT READY'}`;
  return [head, ...lines].join('\n') + '\n';
}
