// ArpResponder: answers ARP for owned VIPs on one interface and announces them.
//
// The reply path runs in a worker thread (arp-worker.ts) that reads the interface with a
// blocking recv() and answers by itself; this class, on the main thread, owns the decisions
// that need time: the gratuitous ARP schedule (at once, then twice `repeatMs` apart, and
// again when the link comes back up), conflicts (kept per VIP, reported, never answered
// with extra announcements: no ARP war), and stopping. Owned VIPs and the answering flag are
// in shared memory, so setOwned() and stopAnswering() act on the very next frame.
//
// The transport (how frames are read and written) is injectable: tests use an in-process
// one that runs the same SharedArpState.process() the worker runs.

import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { encodeGratuitousReply, encodeGratuitousRequest, ipv4ToNumber, ownedSet, type ArpConflict } from './arp.ts';
import type { ArpWorkerData, ArpWorkerMessage } from './arp-worker.ts';
import { interfaceInfo, PacketSocket } from './packet.ts';
import { SharedArpState, type ArpCounters } from './shared.ts';

export interface TransportEvents {
  conflict(c: ArpConflict): void;
  error(e: Error): void;
}

/** How frames get read and written. */
export interface ArpTransport {
  /** The interface's MAC, "aa:bb:cc:dd:ee:ff": what replies and announcements carry. */
  readonly mac: string;
  /** Start reading frames and answering through `state`; resolves once reading. */
  start(state: SharedArpState, events: TransportEvents): Promise<void>;
  /** Send one frame at once; throws when it cannot. */
  send(frame: Buffer): void;
  close(): Promise<void>;
}

export interface ConflictRecord extends ArpConflict {
  /** When it was last seen (ISO 8601). */
  at: string;
  /** Conflicting frames reported for this VIP (the worker reports at most one a second per MAC). */
  count: number;
}

export interface ArpStats extends ArpCounters {
  /** The last conflict per owned VIP. */
  vipConflicts: ConflictRecord[];
}

export interface ArpResponderOptions {
  /** The announce interface, e.g. "eth0". */
  iface: string;
  /** Default: an AF_PACKET socket on `iface` and a worker thread (PacketTransport). */
  transport?: ArpTransport;
  /** Whether the link is up; default reads /sys/class/net/IFACE/operstate. */
  linkUp?: () => Promise<boolean>;
  /** How often to look at the link; default 250 ms. */
  linkPollMs?: number;
  /** Time between the repeats of an announcement; default 1000 ms. */
  repeatMs?: number;
  /** Repeats after the first announcement; default 2. */
  repeats?: number;
  /** A conflict: another MAC claims an owned VIP. Log it and count edgeport_arp_conflicts_total. */
  onConflict?: (c: ConflictRecord) => void;
  /** The first announcement of `vip` since it was last announce()d went out. */
  onAnnounced?: (vip: string) => void;
  /** A transport problem (send failed, the worker died). */
  onError?: (e: Error) => void;
}

interface Schedule {
  timers: NodeJS.Timeout[];
}

export class ArpResponder {
  readonly iface: string;
  private readonly opts: ArpResponderOptions;
  private readonly state = new SharedArpState();
  private transport: ArpTransport | undefined;
  private owned = new Set<string>();
  private readonly announcedSet = new Set<string>();
  private readonly schedules = new Map<string, Schedule>();
  private readonly conflicts = new Map<string, ConflictRecord>();
  private linkTimer: NodeJS.Timeout | undefined;
  private linkWasUp = true;
  private linkBusy = false;
  private started = false;
  private answering = true;
  private closed = false;

  constructor(opts: ArpResponderOptions) {
    this.opts = opts;
    this.iface = opts.iface;
  }

  /** The MAC replies carry (known after start()). */
  get mac(): string | undefined {
    return this.transport?.mac;
  }

  /** Opens the interface and starts answering for the owned VIPs (none yet unless setOwned ran). Throws when it cannot. */
  async start(): Promise<void> {
    if (this.started) return;
    this.transport = this.opts.transport ?? new PacketTransport(this.iface);
    await this.transport.start(this.state, {
      conflict: (c) => this.conflict(c),
      error: (e) => this.opts.onError?.(e),
    });
    this.started = true;
    this.linkWasUp = await this.readLink();
    const poll = this.opts.linkPollMs ?? 250;
    this.linkTimer = setInterval(() => void this.checkLink(), poll);
    this.linkTimer.unref();
  }

  /** Answer only for these VIPs, from the next frame on. IPv6 entries are ignored (no NDP yet). */
  setOwned(vips: readonly string[]): void {
    const next = new Set(vips.filter((v) => ipv4ToNumber(v) !== undefined));
    this.state.setOwned(ownedSet(next));
    for (const v of this.owned) {
      if (!next.has(v)) {
        this.cancel(v);
        this.announcedSet.delete(v);
        this.conflicts.delete(v);
      }
    }
    this.owned = next;
  }

  ownedVips(): string[] {
    return [...this.owned];
  }

  /**
   * Gratuitous ARP for an owned VIP: request and reply forms at once, then `repeats` times
   * `repeatMs` apart. Returns whether the first pair went out (when not, the repeats and the
   * next link-up try again). Throws RangeError for a VIP that is not owned.
   */
  announce(vip: string): boolean {
    if (!this.owned.has(vip)) throw new RangeError(`Cannot announce "${vip}": it is not an owned IPv4 VIP (call setOwned first)`);
    if (!this.started || !this.answering) return false;
    this.cancel(vip);
    const sched: Schedule = { timers: [] };
    this.schedules.set(vip, sched);
    const repeatMs = this.opts.repeatMs ?? 1000;
    const repeats = this.opts.repeats ?? 2;
    for (let i = 1; i <= repeats; i++) {
      const t = setTimeout(() => {
        if (i === repeats) this.schedules.delete(vip);
        this.sendPair(vip);
      }, i * repeatMs);
      t.unref();
      sched.timers.push(t);
    }
    return this.sendPair(vip);
  }

  isAnnounced(vip: string): boolean {
    return this.announcedSet.has(vip);
  }

  /** Every owned VIP has been announced at least once (for /readyz). */
  allAnnounced(): boolean {
    for (const v of this.owned) if (!this.announcedSet.has(v)) return false;
    return true;
  }

  /** SIGTERM: stop answering at once (next frame) and cancel pending announcements. Keeps counters. */
  stopAnswering(): void {
    this.answering = false;
    this.state.answering = false;
    for (const v of [...this.schedules.keys()]) this.cancel(v);
  }

  get isAnswering(): boolean {
    return this.answering;
  }

  stats(): ArpStats {
    return { ...this.state.counters(), vipConflicts: [...this.conflicts.values()].map((c) => ({ ...c })) };
  }

  /** Stops answering and the worker; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopAnswering();
    if (this.linkTimer) clearInterval(this.linkTimer);
    this.state.requestStop();
    await this.transport?.close();
  }

  private cancel(vip: string): void {
    const s = this.schedules.get(vip);
    if (!s) return;
    for (const t of s.timers) clearTimeout(t);
    this.schedules.delete(vip);
  }

  private sendPair(vip: string): boolean {
    if (!this.answering || !this.owned.has(vip) || !this.transport) return false;
    const mac = this.transport.mac;
    try {
      this.transport.send(encodeGratuitousRequest(mac, vip));
      this.state.countGratuitous(1);
      this.transport.send(encodeGratuitousReply(mac, vip));
      this.state.countGratuitous(1);
    } catch (e) {
      this.opts.onError?.(new Error(`Cannot announce ${vip} on ${this.iface}: ${(e as Error).message}`, { cause: e }));
      return false;
    }
    if (!this.announcedSet.has(vip)) {
      this.announcedSet.add(vip);
      this.opts.onAnnounced?.(vip);
    }
    return true;
  }

  private conflict(c: ArpConflict): void {
    if (!this.owned.has(c.vip)) return;
    const prev = this.conflicts.get(c.vip);
    const rec: ConflictRecord = { vip: c.vip, mac: c.mac, at: new Date().toISOString(), count: (prev?.count ?? 0) + 1 };
    this.conflicts.set(c.vip, rec);
    this.opts.onConflict?.({ ...rec });
  }

  private async readLink(): Promise<boolean> {
    try {
      return await (this.opts.linkUp ?? (() => operstateUp(this.iface)))();
    } catch {
      return false;
    }
  }

  private async checkLink(): Promise<void> {
    if (this.linkBusy || this.closed) return;
    this.linkBusy = true;
    try {
      const up = await this.readLink();
      const cameUp = up && !this.linkWasUp;
      this.linkWasUp = up;
      if (cameUp && this.answering) for (const v of this.owned) this.announce(v);
    } finally {
      this.linkBusy = false;
    }
  }
}

/** operstate "up" (or "unknown", which some virtual drivers report while working). */
export async function operstateUp(iface: string): Promise<boolean> {
  const s = (await readFile(`/sys/class/net/${iface}/operstate`, 'utf8')).trim();
  return s === 'up' || s === 'unknown';
}

/** The real transport: a worker thread reading an AF_PACKET socket, and a send-only socket here. */
export class PacketTransport implements ArpTransport {
  readonly mac: string;
  readonly ifindex: number;
  private readonly recvTimeoutMs: number;
  private worker: Worker | undefined;
  private sender: PacketSocket | undefined;
  private exited: Promise<void> = Promise.resolve();
  private state: SharedArpState | undefined;
  private stopping = false;

  constructor(iface: string, opts: { recvTimeoutMs?: number } = {}) {
    const info = interfaceInfo(iface);
    this.mac = info.mac;
    this.ifindex = info.index;
    this.recvTimeoutMs = opts.recvTimeoutMs ?? 200;
  }

  async start(state: SharedArpState, events: TransportEvents): Promise<void> {
    this.sender = new PacketSocket({ ifindex: this.ifindex, protocol: 0 });
    const workerData: ArpWorkerData = { ifindex: this.ifindex, mac: this.mac, buffer: state.buffer, recvTimeoutMs: this.recvTimeoutMs };
    const worker = new Worker(new URL('./arp-worker.ts', import.meta.url), { workerData });
    this.worker = worker;
    this.state = state;
    let ready = false;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: ArpWorkerMessage) => {
        if (m.type === 'ready') {
          ready = true;
          resolve();
        } else if (m.type === 'conflict') {
          events.conflict({ vip: m.vip, mac: m.mac });
        } else if (m.fatal && !ready) {
          reject(new Error(m.message));
        } else {
          events.error(new Error(m.message));
        }
      });
      worker.on('error', (e) => (ready ? events.error(e) : reject(e)));
      worker.once('exit', (code) => {
        if (!ready) reject(new Error(`Cannot start the ARP worker: it exited with code ${code}`));
        else if (!state.stopRequested && !this.stopping) events.error(new Error(`The ARP worker exited with code ${code}: ARP is no longer answered`));
      });
    }).catch(async (e: unknown) => {
      this.sender?.close();
      this.sender = undefined;
      await this.exited;
      throw e;
    });
    worker.unref();
  }

  send(frame: Buffer): void {
    if (!this.sender) throw new Error('the transport is not started');
    this.sender.send(frame);
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.state?.requestStop();
    const w = this.worker;
    if (w) {
      // The worker notices SharedArpState.requestStop() within recvTimeoutMs; terminate() as a backstop.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, this.recvTimeoutMs * 5)))]);
      clearTimeout(timer);
      await w.terminate();
    }
    this.sender?.close();
    this.sender = undefined;
  }
}
