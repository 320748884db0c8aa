import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalIp,
  formatIp,
  formatRange,
  ipFamily,
  isBuggyIp,
  parseIPv4,
  parseIPv6,
  parseIp,
  parsePoolEntry,
  poolSize,
  rangeContains,
  rangeSize,
  rangesOverlap,
  usableAddresses,
} from '../../lb/ipam/address.ts';
import type { IpRange } from '../../lb/ipam/address.ts';

function range(entry: string): IpRange {
  const r = parsePoolEntry(entry);
  assert.ok(r.ok, `${entry}: ${r.ok ? '' : r.message}`);
  return r.range;
}

test('parseIPv4 accepts dotted quads and refuses everything else', () => {
  const table: [string, bigint | undefined][] = [
    ['0.0.0.0', 0n],
    ['10.0.0.1', 0x0a000001n],
    ['255.255.255.255', 0xffffffffn],
    ['192.168.122.90', 0xc0a87a5an],
    ['256.0.0.1', undefined],
    ['10.0.0', undefined],
    ['10.0.0.1.2', undefined],
    ['010.0.0.1', undefined], // leading zero: octal elsewhere
    ['10.0.0.-1', undefined],
    ['10.0.0.1 ', undefined],
    ['1e1.0.0.1', undefined],
    ['', undefined],
    ['a.b.c.d', undefined],
  ];
  for (const [s, want] of table) assert.equal(parseIPv4(s), want, s);
});

test('parseIPv6 accepts RFC 4291 forms and refuses malformed ones', () => {
  const table: [string, bigint | undefined][] = [
    ['::', 0n],
    ['::1', 1n],
    ['1::', 1n << 112n],
    ['2001:db8::1', (0x20010db8n << 96n) | 1n],
    ['2001:DB8:0:0:0:0:0:1', (0x20010db8n << 96n) | 1n],
    ['::ffff:10.0.0.1', (0xffffn << 32n) | 0x0a000001n],
    ['0:0:0:0:0:ffff:10.0.0.1', (0xffffn << 32n) | 0x0a000001n],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', (1n << 128n) - 1n],
    ['1:2:3:4:5:6:7::', 0x0001000200030004000500060007_0000n],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['1:2:3:4:5:6:7', undefined],
    ['1::2::3', undefined],
    [':1::', undefined],
    ['1:', undefined],
    ['12345::', undefined],
    ['fe80::1%eth0', undefined],
    ['[::1]', undefined],
    ['10.0.0.1::', undefined],
    ['::10.0.0.256', undefined],
    ['g::1', undefined],
    ['1:2:3:4:5:6:7:8::', undefined],
  ];
  for (const [s, want] of table) assert.equal(parseIPv6(s), want, s);
});

test('formatIp gives RFC 5952 canonical text, and round-trips parseIp', () => {
  const table: [string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:0:0:0:ffff:a00:1', '::ffff:10.0.0.1'],
    ['10.0.0.1', '10.0.0.1'],
  ];
  for (const [s, want] of table) {
    assert.equal(canonicalIp(s), want, s);
    const a = parseIp(s)!;
    assert.deepEqual(parseIp(formatIp(a.value, a.family)), a, s);
  }
  assert.throws(() => formatIp(1n << 32n, 4), RangeError);
  assert.equal(canonicalIp('db.local'), undefined);
  assert.equal(ipFamily('::1'), 6);
  assert.equal(ipFamily('127.0.0.1'), 4);
  assert.equal(ipFamily('localhost'), undefined);
});

test('parsePoolEntry reads ranges, CIDRs and single addresses', () => {
  const table: [string, string, bigint][] = [
    ['192.168.122.90-192.168.122.100', '192.168.122.90-192.168.122.100', 11n],
    ['192.168.122.90 - 192.168.122.100', '192.168.122.90-192.168.122.100', 11n],
    ['10.20.0.0/28', '10.20.0.0-10.20.0.15', 16n],
    ['10.0.0.7/32', '10.0.0.7', 1n],
    ['10.0.0.7', '10.0.0.7', 1n],
    ['0.0.0.0/0', '0.0.0.0-255.255.255.255', 1n << 32n],
    ['2001:db8::/126', '2001:db8::-2001:db8::3', 4n],
    ['2001:db8::/64', '2001:db8::-2001:db8::ffff:ffff:ffff:ffff', 1n << 64n],
    ['fd00::1-fd00::a', 'fd00::1-fd00::a', 10n],
  ];
  for (const [entry, want, size] of table) {
    const r = range(entry);
    assert.equal(formatRange(r), want, entry);
    assert.equal(rangeSize(r), size, entry);
  }
});

test('parsePoolEntry explains what is wrong, values quoted', () => {
  const table: [string, RegExp][] = [
    ['10.0.0.9-10.0.0.1', /^"10\.0\.0\.9-10\.0\.0\.1" ends before it starts$/],
    ['10.0.0.5/24', /^Use "10\.0\.0\.0\/24": "10\.0\.0\.5\/24" has host bits set$/],
    ['2001:db8::1/64', /^Use "2001:db8::\/64": .* has host bits set$/],
    ['10.0.0.0/33', /prefix length in 0\.\.32.*"\/33"/],
    ['2001:db8::/129', /prefix length in 0\.\.128/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/x', /prefix length/],
    ['foo/24', /CIDR.*does not start with an IP address/],
    ['10.0.0.1-::5', /one address family.*mixes IPv4 and IPv6/],
    ['10.0.0.1-10.0.0.256', /range of two IP addresses/],
    ['10.0.0.1-', /range of two IP addresses/],
    ['abc', /Use a range "A-B", a CIDR "N\/len" or an IP address, not "abc"/],
    ['', /not ""/],
  ];
  for (const [entry, want] of table) {
    const r = parsePoolEntry(entry);
    assert.equal(r.ok, false, entry);
    if (!r.ok) assert.match(r.message, want, entry);
  }
});

test('rangeSize and poolSize skip .0 and .255 only with avoidBuggyIPs, only for IPv4', () => {
  const table: [string, bigint, bigint][] = [
    ['10.0.0.0/24', 256n, 254n],
    ['10.0.0.0/23', 512n, 508n],
    ['10.0.0.255/32', 1n, 0n],
    ['10.0.0.0/32', 1n, 0n],
    ['10.0.0.254-10.0.1.1', 4n, 2n],
    ['10.0.0.1-10.0.0.254', 254n, 254n],
    ['0.0.0.0/0', 1n << 32n, (1n << 32n) - 2n * (1n << 24n)],
    ['2001:db8::/120', 256n, 256n],
  ];
  for (const [entry, plain, avoid] of table) {
    const r = range(entry);
    assert.equal(rangeSize(r, false), plain, entry);
    assert.equal(rangeSize(r, true), avoid, entry);
    // The closed form agrees with counting one by one (small ranges only).
    if (plain <= 1024n) assert.equal(BigInt([...usableAddresses([r], true)].length), avoid, entry);
  }
  assert.equal(poolSize([range('10.0.0.0/24'), range('10.0.1.0/24')], true), 508n);
  assert.equal(poolSize([], true), 0n);
  assert.equal(isBuggyIp(parseIp('10.0.0.255')!.value, 4), true);
  assert.equal(isBuggyIp(parseIp('10.0.0.0')!.value, 4), true);
  assert.equal(isBuggyIp(parseIp('10.0.0.1')!.value, 4), false);
  assert.equal(isBuggyIp(parseIp('::ff')!.value, 6), false);
});

test('usableAddresses walks the ranges in order, lazily', () => {
  const got = [...usableAddresses([range('10.0.0.254-10.0.1.1'), range('10.0.2.5')], true)].map((a) => formatIp(a.value, a.family));
  assert.deepEqual(got, ['10.0.0.254', '10.0.1.1', '10.0.2.5']);
  const it = usableAddresses([range('2001:db8::/32')]);
  assert.equal(formatIp(it.next().value!.value, 6), '2001:db8::');
});

test('rangesOverlap and rangeContains respect families and bounds', () => {
  const table: [string, string, boolean][] = [
    ['10.0.0.0/24', '10.0.0.255-10.0.1.5', true],
    ['10.0.0.0/24', '10.0.1.0/24', false],
    ['10.0.0.5', '10.0.0.0/29', true],
    ['10.0.0.0/8', '10.200.0.0/16', true],
    ['::a00:0/120', '10.0.0.0/24', false], // same numbers, other family
  ];
  for (const [a, b, want] of table) {
    assert.equal(rangesOverlap(range(a), range(b)), want, `${a} ${b}`);
    assert.equal(rangesOverlap(range(b), range(a)), want, `${b} ${a}`);
  }
  assert.equal(rangeContains(range('10.0.0.0/24'), parseIp('10.0.0.255')!), true);
  assert.equal(rangeContains(range('10.0.0.0/24'), parseIp('10.0.1.0')!), false);
  assert.equal(rangeContains(range('::/96'), parseIp('10.0.0.1')!), false);
});
