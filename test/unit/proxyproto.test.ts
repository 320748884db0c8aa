import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxyHeader } from '../../lb/dataplane/proxyproto.ts';

const SIG = '0d0a0d0a000d0a515549540a';

test('proxyHeader none sends nothing', () => {
  assert.equal(proxyHeader('none', { srcAddr: '10.0.0.1', srcPort: 1, dstAddr: '10.0.0.2', dstPort: 2, protocol: 'TCP' }), undefined);
});

const table = [
  {
    desc: 'v1 TCP4',
    kind: 'v1' as const,
    e: { srcAddr: '192.168.0.1', srcPort: 56324, dstAddr: '192.168.0.11', dstPort: 443, protocol: 'TCP' as const },
    want: Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n').toString('hex'),
  },
  {
    desc: 'v1 unmaps IPv4-mapped IPv6',
    kind: 'v1' as const,
    e: { srcAddr: '::ffff:10.1.2.3', srcPort: 1000, dstAddr: '::ffff:10.0.0.10', dstPort: 80, protocol: 'TCP' as const },
    want: Buffer.from('PROXY TCP4 10.1.2.3 10.0.0.10 1000 80\r\n').toString('hex'),
  },
  {
    desc: 'v1 TCP6',
    kind: 'v1' as const,
    e: { srcAddr: '2001:db8::1', srcPort: 5, dstAddr: '2001:db8::2', dstPort: 6, protocol: 'TCP' as const },
    want: Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 5 6\r\n').toString('hex'),
  },
  {
    desc: 'v2 TCP over IPv4',
    kind: 'v2' as const,
    e: { srcAddr: '10.0.0.1', srcPort: 0x1234, dstAddr: '10.0.0.2', dstPort: 80, protocol: 'TCP' as const },
    want: SIG + '21' + '11' + '000c' + '0a000001' + '0a000002' + '1234' + '0050',
  },
  {
    desc: 'v2 UDP over IPv4',
    kind: 'v2' as const,
    e: { srcAddr: '127.0.0.1', srcPort: 53, dstAddr: '127.0.0.10', dstPort: 5353, protocol: 'UDP' as const },
    want: SIG + '21' + '12' + '000c' + '7f000001' + '7f00000a' + '0035' + '14e9',
  },
  {
    desc: 'v2 TCP over IPv6 with :: in the middle',
    kind: 'v2' as const,
    e: { srcAddr: '2001:db8::1', srcPort: 1, dstAddr: '::1', dstPort: 2, protocol: 'TCP' as const },
    want: SIG + '21' + '21' + '0024' + '20010db8000000000000000000000001' + '00000000000000000000000000000001' + '0001' + '0002',
  },
];

for (const row of table) {
  test(`proxyHeader ${row.desc}`, () => {
    assert.equal(proxyHeader(row.kind, row.e)?.toString('hex'), row.want);
  });
}
