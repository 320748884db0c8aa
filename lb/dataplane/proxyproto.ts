// PROXY protocol headers sent to backends (HAProxy's spec, v1 text and v2 binary). Pure.

import { ipFamily } from '../ipam/address.ts';
import type { ProxyProtocol } from '../core/types.ts';

const isV6 = (a: string): boolean => ipFamily(a) === 6;

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export interface Endpoints {
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
  protocol: 'TCP' | 'UDP';
}

/** Strip the IPv4-mapped prefix so "::ffff:10.0.0.1" is treated as IPv4. */
function unmap(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export function proxyHeader(kind: ProxyProtocol, e: Endpoints): Buffer | undefined {
  if (kind === 'none') return undefined;
  const src = unmap(e.srcAddr);
  const dst = unmap(e.dstAddr);
  const v6 = isV6(src) || isV6(dst);
  if (kind === 'v1') {
    if (e.protocol !== 'TCP') return undefined; // v1 only describes TCP streams
    // One family per header: with a v6 side, a v4 side is written IPv4-mapped (as v2 does).
    const s1 = v6 && !isV6(src) ? `::ffff:${src}` : src;
    const d1 = v6 && !isV6(dst) ? `::ffff:${dst}` : dst;
    return Buffer.from(`PROXY ${v6 ? 'TCP6' : 'TCP4'} ${s1} ${d1} ${e.srcPort} ${e.dstPort}\r\n`, 'latin1');
  }
  const addrLen = v6 ? 36 : 12;
  const buf = Buffer.alloc(16 + addrLen);
  V2_SIG.copy(buf, 0);
  buf[12] = 0x21; // version 2, PROXY command
  buf[13] = (v6 ? 0x20 : 0x10) | (e.protocol === 'TCP' ? 0x01 : 0x02);
  buf.writeUInt16BE(addrLen, 14);
  if (v6) {
    writeV6(buf, 16, src);
    writeV6(buf, 32, dst);
    buf.writeUInt16BE(e.srcPort, 48);
    buf.writeUInt16BE(e.dstPort, 50);
  } else {
    writeV4(buf, 16, src);
    writeV4(buf, 20, dst);
    buf.writeUInt16BE(e.srcPort, 24);
    buf.writeUInt16BE(e.dstPort, 26);
  }
  return buf;
}

function writeV4(buf: Buffer, off: number, a: string): void {
  const parts = a.split('.');
  for (let i = 0; i < 4; i++) buf[off + i] = Number(parts[i]) & 0xff;
}

function writeV6(buf: Buffer, off: number, a: string): void {
  if (!isV6(a)) a = `::ffff:${a}`;
  const [head, tail] = a.split('::') as [string, string | undefined];
  const toGroups = (s: string | undefined): number[] => {
    if (!s) return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        const p = g.split('.').map(Number);
        out.push(((p[0]! << 8) | p[1]!) & 0xffff, ((p[2]! << 8) | p[3]!) & 0xffff);
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const h = toGroups(head);
  const t = tail === undefined ? [] : toGroups(tail);
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  for (let i = 0; i < 8; i++) buf.writeUInt16BE(groups[i] ?? 0, off + i * 2);
}
