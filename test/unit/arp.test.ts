import { prng } from '../support/prng.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeArp,
  encodeArp,
  encodeGratuitousReply,
  encodeGratuitousRequest,
  encodeReplyTo,
  handleFrame,
  ipv4ToNumber,
  ownedSet,
  parseMac,
  type ArpConflict,
} from '../../lb/l2/arp.ts';
import { EDGEPORT_ROUTE_PROTO, LocalVips } from '../../lb/l2/host.ts';
import { ArpResponder, type ArpTransport, type ConflictRecord, type TransportEvents } from '../../lb/l2/responder.ts';
import { MAX_OWNED, SharedArpState } from '../../lb/l2/shared.ts';

// Hand-written frames (hex, spaces for reading), independent of the encoder.
const OUR = '02:00:00:00:00:01';
const OUR_HEX = '020000000001';
const CLI = '52:54:00:12:34:56';
const CLI_HEX = '525400123456';
const OTHER = '02:00:00:00:be:ef';
const OTHER_HEX = '02000000beef';
const VIP = '192.168.122.90';
const VIP_HEX = 'c0a87a5a';
const VIP2 = '192.168.122.91';
const CLIENT_IP_HEX = 'c0a87a0a'; // 192.168.122.10
const BCAST = 'ffffffffffff';
const ZERO = '000000000000';
const PAD = '00'.repeat(18);
const HDR = '0806 0001 0800 06 04';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const arpFrame = (ethDst: string, ethSrc: string, op: string, sha: string, spa: string, tha: string, tpa: string, pad = PAD) =>
  hex(`${ethDst} ${ethSrc} ${HDR} ${op} ${sha} ${spa} ${tha} ${tpa} ${pad}`);

const REQUEST = arpFrame(BCAST, CLI_HEX, '0001', CLI_HEX, CLIENT_IP_HEX, ZERO, VIP_HEX);
const REPLY_TO_REQUEST = arpFrame(CLI_HEX, OUR_HEX, '0002', OUR_HEX, VIP_HEX, CLI_HEX, CLIENT_IP_HEX);
const PROBE = arpFrame(BCAST, CLI_HEX, '0001', CLI_HEX, '00000000', ZERO, VIP_HEX);
const REPLY_TO_PROBE = arpFrame(CLI_HEX, OUR_HEX, '0002', OUR_HEX, VIP_HEX, CLI_HEX, '00000000');
const GARP_REQUEST = arpFrame(BCAST, OUR_HEX, '0001', OUR_HEX, VIP_HEX, BCAST, VIP_HEX);
const GARP_REPLY = arpFrame(BCAST, OUR_HEX, '0002', OUR_HEX, VIP_HEX, BCAST, VIP_HEX);

const ourMac = parseMac(OUR)!;
const owned = ownedSet([VIP, VIP2, '2001:db8::1']);

test('decodeArp reads every field of a who-has, padded or not', () => {
  const want = { op: 1, senderMac: CLI, senderIp: '192.168.122.10', targetMac: '00:00:00:00:00:00', targetIp: VIP, ethSrc: CLI, ethDst: 'ff:ff:ff:ff:ff:ff' };
  assert.deepEqual(decodeArp(REQUEST), want);
  assert.deepEqual(decodeArp(REQUEST.subarray(0, 42)), want, 'unpadded 42-byte frame');
  assert.deepEqual(decodeArp(Buffer.concat([REQUEST, hex('deadbeef')])), want, 'trailing FCS bytes');
});

test('decodeArp returns undefined for truncated and non Ethernet/IPv4 ARP frames', () => {
  const mutate = (offset: number, bytes: string) => {
    const f = Buffer.from(REQUEST);
    hex(bytes).copy(f, offset);
    return f;
  };
  const rows: { desc: string; frame: Buffer }[] = [
    { desc: 'empty', frame: Buffer.alloc(0) },
    { desc: '41 bytes (one short of the ARP payload)', frame: REQUEST.subarray(0, 41) },
    { desc: 'Ethernet header only', frame: REQUEST.subarray(0, 14) },
    { desc: 'IPv4 ethertype', frame: mutate(12, '0800') },
    { desc: '802.1Q tagged', frame: mutate(12, '8100') },
    { desc: 'htype 6 (IEEE 802)', frame: mutate(14, '0006') },
    { desc: 'ptype IPv6', frame: mutate(16, '86dd') },
    { desc: 'hlen 8', frame: mutate(18, '08') },
    { desc: 'plen 16', frame: mutate(19, '10') },
  ];
  for (const r of rows) assert.equal(decodeArp(r.frame), undefined, r.desc);
});

test('encode gratuitous request and reply forms byte for byte (60 bytes, broadcast, sender = target = VIP)', () => {
  assert.equal(encodeGratuitousRequest(OUR, VIP).toString('hex'), GARP_REQUEST.toString('hex'));
  assert.equal(encodeGratuitousReply(OUR, VIP).toString('hex'), GARP_REPLY.toString('hex'));
  assert.equal(encodeGratuitousReply(OUR, VIP).length, 60);
});

test('encodeReplyTo answers the requester, unicast, with our MAC; a probe gets target IP 0.0.0.0', () => {
  assert.equal(encodeReplyTo(REQUEST, ourMac).toString('hex'), REPLY_TO_REQUEST.toString('hex'));
  assert.equal(encodeReplyTo(PROBE, ourMac).toString('hex'), REPLY_TO_PROBE.toString('hex'));
});

test('encodeArp round-trips through decodeArp and rejects malformed addresses', () => {
  const p = { op: 2, ethDst: CLI, ethSrc: OUR, senderMac: OUR, senderIp: VIP, targetMac: CLI, targetIp: '192.168.122.10' };
  assert.equal(encodeArp(p).toString('hex'), REPLY_TO_REQUEST.toString('hex'));
  assert.deepEqual(decodeArp(encodeArp(p)), p);
  assert.throws(() => encodeArp({ ...p, senderMac: '02:00:00:00:00' }), TypeError);
  assert.throws(() => encodeArp({ ...p, senderIp: '192.168.122.256' }), TypeError);
  assert.throws(() => encodeArp({ ...p, targetIp: '2001:db8::1' }), TypeError);
});

test('ipv4ToNumber, ownedSet: strict dotted quads only; IPv6 left out', () => {
  assert.equal(ipv4ToNumber('255.255.255.255'), 0xffffffff);
  assert.equal(ipv4ToNumber('010.0.0.1'), undefined);
  assert.equal(ipv4ToNumber('1.2.3'), undefined);
  assert.deepEqual([...owned].sort(), [0xc0a87a5a, 0xc0a87a5b]);
});

test('handleFrame decisions', () => {
  const rows: { desc: string; frame: Buffer; answering?: boolean; reply?: Buffer; conflict?: ArpConflict; request?: true }[] = [
    { desc: 'who-has an owned VIP: reply with our MAC', frame: REQUEST, reply: REPLY_TO_REQUEST, request: true },
    { desc: 'who-has, unpadded 42 bytes: reply', frame: REQUEST.subarray(0, 42), reply: REPLY_TO_REQUEST, request: true },
    { desc: 'unicast who-has to our MAC (neighbour refresh): reply', frame: arpFrame(OUR_HEX, CLI_HEX, '0001', CLI_HEX, CLIENT_IP_HEX, OUR_HEX, VIP_HEX), reply: REPLY_TO_REQUEST, request: true },
    { desc: 'RFC 5227 probe (sender 0.0.0.0): reply', frame: PROBE, reply: REPLY_TO_PROBE, request: true },
    { desc: 'who-has a VIP we do not own: nothing', frame: arpFrame(BCAST, CLI_HEX, '0001', CLI_HEX, CLIENT_IP_HEX, ZERO, 'c0a87a5c') },
    { desc: 'who-has an owned VIP while not answering: counted, no reply', frame: REQUEST, answering: false, request: true },
    { desc: 'who-has sent to another host\'s MAC: nothing', frame: arpFrame(OTHER_HEX, CLI_HEX, '0001', CLI_HEX, CLIENT_IP_HEX, ZERO, VIP_HEX) },
    { desc: 'who-has from a broadcast sender MAC: nothing', frame: arpFrame(BCAST, CLI_HEX, '0001', BCAST, CLIENT_IP_HEX, ZERO, VIP_HEX) },
    { desc: 'who-has from a zero sender MAC: nothing', frame: arpFrame(BCAST, CLI_HEX, '0001', ZERO, CLIENT_IP_HEX, ZERO, VIP_HEX) },
    { desc: 'who-has from a multicast sender MAC: nothing', frame: arpFrame(BCAST, CLI_HEX, '0001', '010203040506', CLIENT_IP_HEX, ZERO, VIP_HEX) },
    { desc: 'our own who-has (seen outgoing): nothing', frame: arpFrame(BCAST, OUR_HEX, '0001', OUR_HEX, CLIENT_IP_HEX, ZERO, VIP_HEX) },
    { desc: 'op 3 (RARP) for an owned VIP: nothing', frame: arpFrame(BCAST, CLI_HEX, '0003', CLI_HEX, CLIENT_IP_HEX, ZERO, VIP_HEX) },
    { desc: 'reply for an owned VIP from another MAC: conflict', frame: arpFrame(CLI_HEX, OTHER_HEX, '0002', OTHER_HEX, VIP_HEX, CLI_HEX, CLIENT_IP_HEX), conflict: { vip: VIP, mac: OTHER } },
    { desc: 'gratuitous request for an owned VIP from another MAC: conflict, no reply', frame: arpFrame(BCAST, OTHER_HEX, '0001', OTHER_HEX, VIP_HEX, BCAST, VIP_HEX), conflict: { vip: VIP, mac: OTHER } },
    { desc: 'gratuitous reply for an owned VIP from another MAC: conflict', frame: arpFrame(BCAST, OTHER_HEX, '0002', OTHER_HEX, VIP_HEX, BCAST, VIP_HEX), conflict: { vip: VIP, mac: OTHER } },
    { desc: 'conflict is reported while not answering too', frame: arpFrame(BCAST, OTHER_HEX, '0002', OTHER_HEX, VIP_HEX, BCAST, VIP_HEX), answering: false, conflict: { vip: VIP, mac: OTHER } },
    { desc: 'another host asking with our VIP as its source: conflict, not a request', frame: arpFrame(BCAST, OTHER_HEX, '0001', OTHER_HEX, VIP_HEX, ZERO, 'c0a87a5b'), conflict: { vip: VIP, mac: OTHER } },
    { desc: 'our own gratuitous request: nothing', frame: GARP_REQUEST },
    { desc: 'our own gratuitous reply: nothing', frame: GARP_REPLY },
    { desc: 'gratuitous ARP for a VIP we do not own: nothing', frame: arpFrame(BCAST, OTHER_HEX, '0001', OTHER_HEX, 'c0a87a5c', BCAST, 'c0a87a5c') },
    { desc: 'reply about a VIP we do not own: nothing', frame: arpFrame(CLI_HEX, OTHER_HEX, '0002', OTHER_HEX, 'c0a87a5c', CLI_HEX, CLIENT_IP_HEX) },
    { desc: 'truncated who-has: nothing', frame: REQUEST.subarray(0, 41) },
  ];
  for (const r of rows) {
    const d = handleFrame(r.frame, owned, ourMac, r.answering ?? true);
    assert.equal(d.reply?.toString('hex'), r.reply?.toString('hex'), `${r.desc}: reply`);
    assert.deepEqual(d.conflict, r.conflict, `${r.desc}: conflict`);
    assert.equal(d.request, r.request, `${r.desc}: request`);
  }
});


/** The rule, restated independently of handleFrame over the decoded fields. */
function shouldReply(f: Buffer): boolean {
  const p = decodeArp(f);
  if (!p) return false;
  const mac = (s: string) => s === OUR;
  const ownedIp = (s: string) => s === VIP || s === VIP2;
  const groupOrZero = (s: string) => s === '00:00:00:00:00:00' || (parseInt(s.slice(0, 2), 16) & 1) === 1;
  return (
    p.op === 1 &&
    ownedIp(p.targetIp) &&
    !ownedIp(p.senderIp) &&
    p.senderIp !== p.targetIp &&
    !mac(p.senderMac) &&
    !mac(p.ethSrc) &&
    (p.ethDst === 'ff:ff:ff:ff:ff:ff' || mac(p.ethDst)) &&
    !groupOrZero(p.senderMac)
  );
}

function shouldConflict(f: Buffer): ArpConflict | undefined {
  const p = decodeArp(f);
  if (!p || p.senderMac === OUR || p.ethSrc === OUR || (p.senderIp !== VIP && p.senderIp !== VIP2)) return undefined;
  return { vip: p.senderIp, mac: p.senderMac };
}

test('handleFrame on 12,000 random, truncated and bit-flipped frames: never throws, replies only to valid who-has for owned VIPs', () => {
  const rnd = prng(0x5eed_a4b);
  const int = (n: number) => Math.floor(rnd() * n);
  const bases = [REQUEST, PROBE, GARP_REQUEST, GARP_REPLY, REPLY_TO_REQUEST, arpFrame(BCAST, OTHER_HEX, '0002', OTHER_HEX, VIP_HEX, BCAST, VIP_HEX)];
  let replies = 0;
  let conflicts = 0;
  let decoded = 0;
  for (let i = 0; i < 12_000; i++) {
    const kind = i % 3;
    let f: Buffer;
    if (kind === 0) {
      f = Buffer.alloc(int(80));
      for (let j = 0; j < f.length; j++) f[j] = int(256);
      // Often make it look like ARP so the deeper checks get exercised.
      if (f.length >= 20 && rnd() < 0.5) hex('08060001080006040001').copy(f, 12);
    } else if (kind === 1) {
      f = Buffer.from(bases[int(bases.length)]!.subarray(0, int(61)));
    } else {
      f = Buffer.from(bases[int(bases.length)]!);
      for (let flips = 1 + int(3); flips > 0; flips--) {
        const bit = int(f.length * 8);
        f[bit >> 3]! ^= 1 << (bit & 7);
      }
    }
    const d = handleFrame(f, owned, ourMac);
    if (decodeArp(f)) decoded++;
    const want = shouldReply(f);
    assert.equal(d.reply !== undefined, want, `frame ${i} ${f.toString('hex')}: reply ${d.reply !== undefined}, want ${want}`);
    if (d.reply) {
      replies++;
      assert.equal(d.reply.toString('hex'), encodeReplyTo(f, ourMac).toString('hex'));
      const r = decodeArp(d.reply)!;
      assert.equal(r.senderMac, OUR);
      assert.equal(r.op, 2);
    }
    assert.deepEqual(d.conflict, shouldConflict(f), `frame ${i} ${f.toString('hex')}: conflict`);
    if (d.conflict) conflicts++;
  }
  // The generator must reach every branch, or the assertions above prove little.
  assert.ok(replies > 500, `replies ${replies}`);
  assert.ok(conflicts > 500, `conflicts ${conflicts}`);
  assert.ok(decoded > 4000, `decoded ${decoded}`);
});

test('SharedArpState: the worker side sees setOwned and the answering flag on the next frame', () => {
  const main = new SharedArpState();
  const worker = new SharedArpState(main.buffer);
  assert.equal(worker.process(REQUEST, ourMac).reply, undefined, 'nothing owned yet');
  main.setOwned(ownedSet([VIP]));
  assert.equal(worker.process(REQUEST, ourMac).reply?.toString('hex'), REPLY_TO_REQUEST.toString('hex'));
  worker.countReply();
  main.answering = false;
  assert.equal(worker.process(REQUEST, ourMac).reply, undefined, 'stopped');
  main.answering = true;
  main.setOwned(ownedSet([VIP2]));
  assert.equal(worker.process(REQUEST, ourMac).reply, undefined, 'VIP no longer owned');
  assert.deepEqual(main.counters(), { requests: 2, replies: 1, gratuitous: 0, conflicts: 0, frames: 4 });
  assert.throws(() => main.setOwned(new Set(Array.from({ length: MAX_OWNED + 1 }, (_, i) => i))), RangeError);
});

/** In-process transport: frames delivered here go through the same SharedArpState.process() as in the worker. */
class FakeTransport implements ArpTransport {
  readonly mac = OUR;
  sent: Buffer[] = [];
  failSend = false;
  private state!: SharedArpState;
  private events!: TransportEvents;
  async start(state: SharedArpState, events: TransportEvents): Promise<void> {
    this.state = state;
    this.events = events;
  }
  send(frame: Buffer): void {
    if (this.failSend) throw new Error('Network is down');
    this.sent.push(frame);
  }
  deliver(frame: Buffer): void {
    const d = this.state.process(frame, ourMac);
    if (d.reply) {
      this.sent.push(d.reply);
      this.state.countReply();
    }
    if (d.conflict) this.events.conflict(d.conflict);
  }
  take(): string[] {
    const out = this.sent.map((f) => f.toString('hex'));
    this.sent = [];
    return out;
  }
  async close(): Promise<void> {}
}

const PAIR = [GARP_REQUEST.toString('hex'), GARP_REPLY.toString('hex')];
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

async function responder(t: import('node:test').TestContext, extra: Partial<ConstructorParameters<typeof ArpResponder>[0]> = {}) {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  const transport = new FakeTransport();
  const events = { announced: [] as string[], conflicts: [] as ConflictRecord[], errors: [] as string[] };
  const r = new ArpResponder({
    iface: 'eth0',
    transport,
    linkUp: async () => true,
    onAnnounced: (v) => events.announced.push(v),
    onConflict: (c) => events.conflicts.push(c),
    onError: (e) => events.errors.push(e.message),
    ...extra,
  });
  await r.start();
  t.after(() => r.close());
  return { r, transport, events };
}

test('ArpResponder.announce sends both forms at once, then twice 1 s apart, then stops', async (t) => {
  const { r, transport, events } = await responder(t);
  r.setOwned([VIP]);
  assert.equal(r.allAnnounced(), false);
  assert.equal(r.announce(VIP), true);
  assert.deepEqual(transport.take(), PAIR, 'at once');
  assert.deepEqual(events.announced, [VIP]);
  assert.equal(r.allAnnounced(), true);
  t.mock.timers.tick(999);
  assert.deepEqual(transport.take(), []);
  t.mock.timers.tick(1);
  assert.deepEqual(transport.take(), PAIR, 'after 1 s');
  t.mock.timers.tick(1000);
  assert.deepEqual(transport.take(), PAIR, 'after 2 s');
  t.mock.timers.tick(10_000);
  assert.deepEqual(transport.take(), [], 'nothing more');
  assert.equal(r.stats().gratuitous, 6);
  assert.deepEqual(events.announced, [VIP], 'onAnnounced once');
});

test('ArpResponder answers who-has for owned VIPs only, and counts', async (t) => {
  const { r, transport } = await responder(t);
  r.setOwned([VIP]);
  transport.deliver(REQUEST);
  assert.deepEqual(transport.take(), [REPLY_TO_REQUEST.toString('hex')]);
  r.setOwned([VIP2]);
  transport.deliver(REQUEST);
  assert.deepEqual(transport.take(), [], 'no longer owned');
  const s = r.stats();
  assert.equal(s.requests, 1);
  assert.equal(s.replies, 1);
  assert.throws(() => r.announce(VIP), RangeError, 'announce needs ownership');
});

test('ArpResponder conflict: reported with VIP, MAC and time, counted, and no extra announcement (no ARP war)', async (t) => {
  const { r, transport, events } = await responder(t);
  r.setOwned([VIP]);
  r.announce(VIP);
  transport.take();
  const garpFromOther = arpFrame(BCAST, OTHER_HEX, '0001', OTHER_HEX, VIP_HEX, BCAST, VIP_HEX);
  transport.deliver(garpFromOther);
  transport.deliver(garpFromOther);
  assert.deepEqual(transport.take(), [], 'no answer to a conflict');
  assert.equal(events.conflicts.length, 2);
  assert.equal(events.conflicts[0]!.vip, VIP);
  assert.equal(events.conflicts[0]!.mac, OTHER);
  assert.equal(events.conflicts[0]!.at, new Date(0).toISOString(), 'mocked Date');
  const s = r.stats();
  assert.equal(s.conflicts, 2);
  assert.deepEqual(s.vipConflicts, [{ vip: VIP, mac: OTHER, at: new Date(0).toISOString(), count: 2 }]);
  t.mock.timers.tick(5000);
  assert.equal(transport.take().length, 4, 'only the two scheduled repeats');
  transport.deliver(REQUEST);
  assert.deepEqual(transport.take(), [REPLY_TO_REQUEST.toString('hex')], 'keeps answering');
  r.setOwned([]);
  assert.deepEqual(r.stats().vipConflicts, [], 'forgotten with the VIP');
});

test('ArpResponder.stopAnswering: no reply on the next frame, pending announcements cancelled', async (t) => {
  const { r, transport } = await responder(t);
  r.setOwned([VIP]);
  r.announce(VIP);
  transport.take();
  r.stopAnswering();
  transport.deliver(REQUEST);
  t.mock.timers.tick(5000);
  assert.deepEqual(transport.take(), []);
  assert.equal(r.announce(VIP), false);
  assert.equal(r.stats().requests, 1, 'still counted');
});

test('ArpResponder: a VIP given up mid-schedule is not announced again', async (t) => {
  const { r, transport } = await responder(t);
  r.setOwned([VIP, VIP2]);
  r.announce(VIP);
  r.announce(VIP2);
  transport.take();
  r.setOwned([VIP2]);
  t.mock.timers.tick(1000);
  assert.deepEqual(transport.take(), [encodeGratuitousRequest(OUR, VIP2).toString('hex'), encodeGratuitousReply(OUR, VIP2).toString('hex')]);
});

test('ArpResponder re-announces every owned VIP when the link comes back up', async (t) => {
  let up = true;
  const { r, transport } = await responder(t, { linkUp: async () => up });
  r.setOwned([VIP]);
  r.announce(VIP);
  t.mock.timers.tick(3000);
  transport.take();
  up = false;
  t.mock.timers.tick(250);
  await flush();
  t.mock.timers.tick(250);
  await flush();
  assert.deepEqual(transport.take(), []);
  up = true;
  t.mock.timers.tick(250);
  await flush();
  assert.deepEqual(transport.take(), PAIR, 'at once on link-up');
  t.mock.timers.tick(250);
  await flush();
  assert.deepEqual(transport.take(), [], 'only on the transition');
  t.mock.timers.tick(750);
  await flush();
  assert.deepEqual(transport.take(), PAIR, 'and the repeats');
});

test('ArpResponder: a failed first announcement is not "announced" until a repeat gets out', async (t) => {
  const { r, transport, events } = await responder(t);
  r.setOwned([VIP]);
  transport.failSend = true;
  assert.equal(r.announce(VIP), false);
  assert.equal(r.allAnnounced(), false);
  assert.match(events.errors[0]!, /Cannot announce 192\.168\.122\.90 on eth0: Network is down/);
  transport.failSend = false;
  t.mock.timers.tick(1000);
  assert.equal(r.allAnnounced(), true);
  assert.deepEqual(events.announced, [VIP]);
});

test('LocalVips adds local routes with Edgeport\'s proto and removes only its own', async () => {
  const calls: string[] = [];
  const existing = new Map<string, number>([['10.0.0.7', 2], ['10.0.0.8', EDGEPORT_ROUTE_PROTO]]);
  const run = async (args: readonly string[]) => {
    calls.push(args.join(' '));
    // The grammar of the real ip(8): `route show` takes no route type (`show local X` is
    // "inet prefix is expected rather than local"), so a show selects by table and exact prefix.
    if (args[2] === 'show') assert.match(args.join(' '), /^-[46] route show table local exact \S+\/(32|128) dev lo proto \d+$/);
    const addr = String(args[2] === 'show' ? args[6] : args[4]).split('/')[0]!;
    if (args[2] === 'add') {
      if (existing.has(addr)) throw new Error('ip ...: RTNETLINK answers: File exists');
      existing.set(addr, EDGEPORT_ROUTE_PROTO);
    }
    if (args[2] === 'show') return existing.get(addr) === EDGEPORT_ROUTE_PROTO ? `local ${addr} dev lo proto ${EDGEPORT_ROUTE_PROTO} scope host\n` : '';
    if (args[2] === 'del') existing.delete(addr);
    return '';
  };
  const v = new LocalVips({ run });
  await v.addLocal('10.0.0.5');
  await v.addLocal('10.0.0.5');
  await v.addLocal('10.0.0.7'); // someone else's
  await v.addLocal('10.0.0.8'); // left by an earlier run
  await v.addLocal('2001:db8::5');
  assert.deepEqual(v.ours.sort(), ['10.0.0.5', '10.0.0.8', '2001:db8::5']);
  assert.equal(calls[0], `-4 route add local 10.0.0.5/32 dev lo proto ${EDGEPORT_ROUTE_PROTO}`);
  assert.ok(calls.includes(`-6 route add local 2001:db8::5/128 dev lo proto ${EDGEPORT_ROUTE_PROTO}`));
  await v.removeLocal('10.0.0.7');
  assert.ok(existing.has('10.0.0.7'), 'not ours: kept');
  await v.removeAll();
  assert.deepEqual([...existing.keys()], ['10.0.0.7']);
  assert.ok(calls.includes(`-4 route del local 10.0.0.5/32 dev lo table local proto ${EDGEPORT_ROUTE_PROTO}`));
  await assert.rejects(v.addLocal('not-an-ip'), TypeError);
});
