// IP address arithmetic for pools and the allocator. Pure: no I/O.
// Addresses are bigints (IPv4 in 0..2^32-1, IPv6 in 0..2^128-1) tagged with their family.

export type Family = 4 | 6;

export interface IpAddress {
  family: Family;
  value: bigint;
}

/** An inclusive range of addresses of one family. */
export interface IpRange {
  family: Family;
  first: bigint;
  last: bigint;
}

export type PoolEntryResult = { ok: true; range: IpRange } | { ok: false; message: string };

const MAX: Record<Family, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };
const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Dotted quad, strictly: four decimal octets, no leading zeros (they read as octal elsewhere). */
export function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

/** RFC 4291 text forms: "::" compression and a trailing dotted quad; no zone ("%eth0"), no brackets. */
export function parseIPv6(s: string): bigint | undefined {
  if (s.length === 0 || s.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(s)) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseIPv4(it);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(it)) {
        out.push(parseInt(it, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    groups = head;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parses an IPv4 or IPv6 literal; undefined when it is neither. */
export function parseIp(s: string): IpAddress | undefined {
  const v4 = parseIPv4(s);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIPv6(s);
  if (v6 !== undefined) return { family: 6, value: v6 };
  return undefined;
}

export function ipFamily(s: string): Family | undefined {
  return parseIp(s)?.family;
}

function formatIPv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((sh) => String((v >> sh) & 0xffn)).join('.');
}

/** Formats an address; IPv6 in RFC 5952 canonical form (lower case, longest zero run as "::"). */
export function formatIp(value: bigint, family: Family): string {
  if (value < 0n || value > MAX[family]) throw new RangeError(`Cannot format ${value} as IPv${family}`);
  if (family === 4) return formatIPv4(value);
  if (value >> 32n === 0xffffn) return `::ffff:${formatIPv4(value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an address literal, or undefined when it is not one. */
export function canonicalIp(s: string): string | undefined {
  const a = parseIp(s);
  return a && formatIp(a.value, a.family);
}

/**
 * Parses one entry of a pool's `addresses`: a range "A-B" (inclusive), a CIDR "N/len" or a
 * single address. The message of a failure is user-facing, action first, values quoted.
 */
export function parsePoolEntry(entry: string): PoolEntryResult {
  const s = entry.trim();
  const q = JSON.stringify(entry);
  if (s.includes('/')) {
    const slash = s.indexOf('/');
    const base = parseIp(s.slice(0, slash).trim());
    const lenText = s.slice(slash + 1).trim();
    if (!base) return { ok: false, message: `Use a CIDR such as "10.20.0.0/28": ${q} does not start with an IP address` };
    const bits = BITS[base.family];
    if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > bits) {
      return { ok: false, message: `Use a prefix length in 0..${bits}: ${q} has "/${lenText}"` };
    }
    const len = Number(lenText);
    const hostMask = (1n << BigInt(bits - len)) - 1n;
    if ((base.value & hostMask) !== 0n) {
      const net = formatIp(base.value & ~hostMask & MAX[base.family], base.family);
      return { ok: false, message: `Use "${net}/${len}": ${q} has host bits set` };
    }
    return { ok: true, range: { family: base.family, first: base.value, last: base.value | hostMask } };
  }
  const dash = s.indexOf('-');
  if (dash >= 0) {
    const a = parseIp(s.slice(0, dash).trim());
    const b = parseIp(s.slice(dash + 1).trim());
    if (!a || !b) {
      return { ok: false, message: `Use a range of two IP addresses such as "192.168.122.90-192.168.122.100", not ${q}` };
    }
    if (a.family !== b.family) return { ok: false, message: `Use one address family in a range: ${q} mixes IPv4 and IPv6` };
    if (b.value < a.value) return { ok: false, message: `${q} ends before it starts` };
    return { ok: true, range: { family: a.family, first: a.value, last: b.value } };
  }
  const one = parseIp(s);
  if (!one) {
    return { ok: false, message: `Use a range "A-B", a CIDR "N/len" or an IP address, not ${q}` };
  }
  return { ok: true, range: { family: one.family, first: one.value, last: one.value } };
}

/** IPv4 addresses ending in .0 or .255, which some old clients mishandle (avoidBuggyIPs). */
export function isBuggyIp(value: bigint, family: Family): boolean {
  if (family !== 4) return false;
  const low = value & 0xffn;
  return low === 0n || low === 255n;
}

/** How many v in [first, last] have v mod 256 === r. */
function countResidue(first: bigint, last: bigint, r: bigint): bigint {
  const upTo = (x: bigint): bigint => (x < r ? 0n : (x - r) / 256n + 1n); // v in [0, x]
  return upTo(last) - (first === 0n ? 0n : upTo(first - 1n));
}

/** Number of usable addresses in a range. */
export function rangeSize(r: IpRange, avoidBuggyIPs = false): bigint {
  if (r.last < r.first) return 0n;
  let n = r.last - r.first + 1n;
  if (avoidBuggyIPs && r.family === 4) n -= countResidue(r.first, r.last, 0n) + countResidue(r.first, r.last, 255n);
  return n;
}

/** Number of usable addresses in a pool's ranges (assumed not to overlap). */
export function poolSize(ranges: readonly IpRange[], avoidBuggyIPs = false): bigint {
  let n = 0n;
  for (const r of ranges) n += rangeSize(r, avoidBuggyIPs);
  return n;
}

export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

export function rangeContains(r: IpRange, a: IpAddress): boolean {
  return r.family === a.family && r.first <= a.value && a.value <= r.last;
}

/** Usable addresses of the ranges in order, lazily (an IPv6 /64 is not materialised). */
export function* usableAddresses(ranges: readonly IpRange[], avoidBuggyIPs = false): Generator<IpAddress> {
  for (const r of ranges) {
    for (let v = r.first; v <= r.last; v++) {
      if (avoidBuggyIPs && isBuggyIp(v, r.family)) continue;
      yield { family: r.family, value: v };
    }
  }
}

/** "A-B", or the single address when the range holds one: for messages and metrics. */
export function formatRange(r: IpRange): string {
  const a = formatIp(r.first, r.family);
  return r.first === r.last ? a : `${a}-${formatIp(r.last, r.family)}`;
}
