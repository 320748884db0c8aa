// ARP over Ethernet (RFC 826), IPv4 only: decode, classify, encode. Pure: no I/O, no clock.
// The responder's worker calls handleFrame() on every frame it reads from the announce
// interface; everything that decides whether Edgeport answers lives here and is tested as tables.

export const ETH_P_ARP = 0x0806;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
/** Ethernet header (14) + ARP for Ethernet/IPv4 (28). */
export const ARP_FRAME_LEN = 42;
/** Ethernet minimum frame without FCS: what we send. */
export const MIN_FRAME_LEN = 60;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';

export interface ArpPacket {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
  ethSrc: string;
  ethDst: string;
}

/** Owned VIPs as IPv4 numbers (0..2^32-1): see ownedSet(). */
export type OwnedSet = ReadonlySet<number>;

export interface ArpConflict {
  vip: string;
  /** The other host's MAC (the ARP sender hardware address). */
  mac: string;
}

/** What handleFrame decided: a reply to send, a conflict to report, or nothing. */
export interface FrameDecision {
  /** A who-has for an owned VIP (counted whether or not answering is on). */
  request?: true;
  reply?: Buffer;
  conflict?: ArpConflict;
}

const NOTHING: FrameDecision = Object.freeze({});

/** "a.b.c.d" -> number, or undefined when it is not a strict dotted quad. */
export function ipv4ToNumber(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

export function numberToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The IPv4 addresses among `vips` as an OwnedSet; other entries (IPv6, junk) are left out. */
export function ownedSet(vips: Iterable<string>): Set<number> {
  const out = new Set<number>();
  for (const v of vips) {
    const n = ipv4ToNumber(v);
    if (n !== undefined) out.add(n);
  }
  return out;
}

/** "aa:bb:cc:dd:ee:ff" (also "-" separated, any case) -> 6 bytes; undefined when malformed. */
export function parseMac(s: string): Buffer | undefined {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9A-Fa-f]{2}$/.test(p))) return undefined;
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Uint8Array, offset = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const x = b[offset + i]!;
    s += (i ? ':' : '') + (x < 16 ? '0' : '') + x.toString(16);
  }
  return s;
}

function readIp(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function isEthIpv4Arp(f: Uint8Array): boolean {
  return (
    f.length >= ARP_FRAME_LEN &&
    f[12] === 0x08 && f[13] === 0x06 && // ethertype ARP
    f[14] === 0x00 && f[15] === 0x01 && // htype Ethernet
    f[16] === 0x08 && f[17] === 0x00 && // ptype IPv4
    f[18] === 6 && f[19] === 4 // hlen, plen
  );
}

/** Ethernet + ARP frame -> packet; undefined for anything truncated or not Ethernet/IPv4 ARP. Never throws. */
export function decodeArp(frame: Uint8Array): ArpPacket | undefined {
  if (!isEthIpv4Arp(frame)) return undefined;
  return {
    op: (frame[20]! << 8) | frame[21]!,
    senderMac: formatMac(frame, 22),
    senderIp: numberToIpv4(readIp(frame, 28)),
    targetMac: formatMac(frame, 32),
    targetIp: numberToIpv4(readIp(frame, 38)),
    ethDst: formatMac(frame, 0),
    ethSrc: formatMac(frame, 6),
  };
}

/** The fields to encode; MACs and IPs as text. */
export interface ArpFields {
  op: number;
  ethDst: string;
  ethSrc: string;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** A 60-byte frame (zero padded). Throws TypeError on a malformed MAC or IPv4 address. */
export function encodeArp(p: ArpFields): Buffer {
  const f = Buffer.alloc(MIN_FRAME_LEN);
  const mac = (s: string, o: number) => {
    const m = parseMac(s);
    if (!m) throw new TypeError(`Cannot encode ARP: "${s}" is not a MAC address`);
    m.copy(f, o);
  };
  const ip = (s: string, o: number) => {
    const n = ipv4ToNumber(s);
    if (n === undefined) throw new TypeError(`Cannot encode ARP: "${s}" is not an IPv4 address`);
    f.writeUInt32BE(n, o);
  };
  mac(p.ethDst, 0);
  mac(p.ethSrc, 6);
  f.writeUInt16BE(ETH_P_ARP, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(p.op, 20);
  mac(p.senderMac, 22);
  ip(p.senderIp, 28);
  mac(p.targetMac, 32);
  ip(p.targetIp, 38);
  return f;
}

/**
 * Gratuitous ARP, request form: broadcast, sender = target = VIP. Target MAC is broadcast,
 * as MetalLB and keepalived send it.
 */
export function encodeGratuitousRequest(ourMac: string, vip: string): Buffer {
  return encodeArp({ op: ARP_REQUEST, ethDst: BROADCAST_MAC, ethSrc: ourMac, senderMac: ourMac, senderIp: vip, targetMac: BROADCAST_MAC, targetIp: vip });
}

/** Gratuitous ARP, reply form: broadcast, sender = target = VIP. */
export function encodeGratuitousReply(ourMac: string, vip: string): Buffer {
  return encodeArp({ op: ARP_REPLY, ethDst: BROADCAST_MAC, ethSrc: ourMac, senderMac: ourMac, senderIp: vip, targetMac: BROADCAST_MAC, targetIp: vip });
}

/**
 * The reply the kernel would send to `request`: unicast to the requester's hardware address,
 * sender = our MAC and the VIP asked for, target = the requester (for an RFC 5227 probe the
 * target IP is then 0.0.0.0, as Linux does it).
 */
export function encodeReplyTo(request: Uint8Array, ourMac: Uint8Array): Buffer {
  const f = Buffer.alloc(MIN_FRAME_LEN);
  f.set(request.subarray(22, 28), 0); // eth dst = requester's sha
  f.set(ourMac.subarray(0, 6), 6);
  f[12] = 0x08; f[13] = 0x06;
  f[14] = 0x00; f[15] = 0x01;
  f[16] = 0x08; f[17] = 0x00;
  f[18] = 6; f[19] = 4;
  f[20] = 0; f[21] = ARP_REPLY;
  f.set(ourMac.subarray(0, 6), 22); // sha = us
  f.set(request.subarray(38, 42), 28); // spa = the VIP asked for
  f.set(request.subarray(22, 28), 32); // tha = requester
  f.set(request.subarray(28, 32), 38); // tpa = requester's address (0.0.0.0 for a probe)
  return f;
}

function macEquals(f: Uint8Array, o: number, mac: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (f[o + i] !== mac[i]) return false;
  return true;
}

function isBroadcast(f: Uint8Array, o: number): boolean {
  for (let i = 0; i < 6; i++) if (f[o + i] !== 0xff) return false;
  return true;
}

/**
 * The responder's decision for one received frame.
 * - A who-has (op 1) for an owned VIP, addressed to broadcast or to us, not gratuitous
 *   (sender IP != target IP), not from us: reply (RFC 5227 probes, sender 0.0.0.0, included).
 * - Any ARP whose sender IP is an owned VIP and whose sender MAC is not ours (a reply, a
 *   gratuitous ARP, or a host using our VIP as its source): a conflict (RFC 5227 2.4).
 * - Anything else, malformed frames included: nothing. Never throws, allocates only a reply.
 * `answering: false` still reports requests and conflicts but never replies.
 */
export function handleFrame(frame: Uint8Array, owned: OwnedSet, ourMac: Uint8Array, answering = true): FrameDecision {
  if (!isEthIpv4Arp(frame)) return NOTHING;
  // Our own frames (AF_PACKET also shows outgoing ones) are never requests nor conflicts.
  if (macEquals(frame, 6, ourMac) || macEquals(frame, 22, ourMac)) return NOTHING;
  const op = (frame[20]! << 8) | frame[21]!;
  const spa = readIp(frame, 28);
  const tpa = readIp(frame, 38);
  // Gratuitous ARPs (sender IP = target IP) for an owned VIP end here, as conflicts; for any
  // other address they are not requests for an owned VIP either.
  if (owned.has(spa)) return { conflict: { vip: numberToIpv4(spa), mac: formatMac(frame, 22) } };
  if (op !== ARP_REQUEST || !owned.has(tpa)) return NOTHING;
  if (!isBroadcast(frame, 0) && !macEquals(frame, 0, ourMac)) return NOTHING;
  // A requester hardware address of broadcast/zero cannot be answered.
  if (isBroadcast(frame, 22) || (frame[22]! | frame[23]! | frame[24]! | frame[25]! | frame[26]! | frame[27]!) === 0) return NOTHING;
  // Group (multicast) sender addresses are invalid for ARP.
  if ((frame[22]! & 1) === 1) return NOTHING;
  return answering ? { request: true, reply: encodeReplyTo(frame, ourMac) } : { request: true };
}
