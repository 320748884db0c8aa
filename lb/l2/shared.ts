// State the main thread and the ARP worker share without messages, so that setOwned() and
// stopAnswering() take effect on the very next frame, and stats() is synchronous:
// a SharedArrayBuffer holding the owned IPv4 VIPs (under a seqlock), flags and counters.
// Pure (Atomics only): no I/O, no timers.

import { handleFrame, type ArpConflict } from './arp.ts';

const SEQ = 0;
const COUNT = 1;
const ANSWERING = 2;
const STOP = 3;
const REQUESTS = 4;
const REPLIES = 5;
const CONFLICTS = 6;
const GRATUITOUS = 7;
const FRAMES = 8;
const HEADER = 16;

/** Most VIPs one responder can own. */
export const MAX_OWNED = 4096;

export interface ArpCounters {
  /** Who-has requests for owned VIPs seen on the interface. */
  requests: number;
  /** Replies sent. */
  replies: number;
  /** Gratuitous ARP frames sent (each form counts one). */
  gratuitous: number;
  /** ARP frames from another MAC claiming an owned VIP. */
  conflicts: number;
  /** ARP frames read from the interface (any kind, ours excluded by the kernel filter only). */
  frames: number;
}

export class SharedArpState {
  readonly buffer: SharedArrayBuffer;
  private readonly a: Int32Array;
  private cachedSeq = -1;
  private cached: Set<number> = new Set();

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer((HEADER + MAX_OWNED) * 4);
    this.a = new Int32Array(this.buffer);
    if (!buffer) Atomics.store(this.a, ANSWERING, 1);
  }

  /** Writer side (main thread only). Throws RangeError beyond MAX_OWNED. */
  setOwned(vips: ReadonlySet<number>): void {
    if (vips.size > MAX_OWNED) throw new RangeError(`Cannot own ${vips.size} VIPs: at most ${MAX_OWNED} per interface`);
    Atomics.add(this.a, SEQ, 1); // odd: writing
    let i = HEADER;
    for (const v of vips) Atomics.store(this.a, i++, v | 0);
    Atomics.store(this.a, COUNT, vips.size);
    Atomics.add(this.a, SEQ, 1);
  }

  /** Reader side: the owned set, rebuilt only when the writer changed it. */
  owned(): ReadonlySet<number> {
    for (let tries = 0; tries < 1000; tries++) {
      const s1 = Atomics.load(this.a, SEQ);
      if (s1 === this.cachedSeq) return this.cached;
      if (s1 & 1) continue;
      const n = Atomics.load(this.a, COUNT);
      const next = new Set<number>();
      for (let i = 0; i < n && i < MAX_OWNED; i++) next.add(Atomics.load(this.a, HEADER + i) >>> 0);
      if (Atomics.load(this.a, SEQ) !== s1) continue;
      this.cachedSeq = s1;
      this.cached = next;
      return next;
    }
    return this.cached; // a writer that never finishes: keep the last consistent set
  }

  get answering(): boolean {
    return Atomics.load(this.a, ANSWERING) === 1;
  }
  set answering(on: boolean) {
    Atomics.store(this.a, ANSWERING, on ? 1 : 0);
  }

  get stopRequested(): boolean {
    return Atomics.load(this.a, STOP) === 1;
  }
  requestStop(): void {
    Atomics.store(this.a, STOP, 1);
  }

  countGratuitous(n: number): void {
    Atomics.add(this.a, GRATUITOUS, n);
  }

  counters(): ArpCounters {
    return {
      requests: Atomics.load(this.a, REQUESTS),
      replies: Atomics.load(this.a, REPLIES),
      gratuitous: Atomics.load(this.a, GRATUITOUS),
      conflicts: Atomics.load(this.a, CONFLICTS),
      frames: Atomics.load(this.a, FRAMES),
    };
  }

  /**
   * One received frame, as the worker handles it: decide, count, and return the reply to
   * send (if any) and the conflict to report (if any). Shared by the worker and test transports.
   */
  process(frame: Uint8Array, ourMac: Uint8Array): { reply?: Buffer; conflict?: ArpConflict } {
    Atomics.add(this.a, FRAMES, 1);
    const d = handleFrame(frame, this.owned(), ourMac, this.answering);
    if (d.request) Atomics.add(this.a, REQUESTS, 1);
    if (d.conflict) Atomics.add(this.a, CONFLICTS, 1);
    return d;
  }

  /** Call after a reply went out. */
  countReply(): void {
    Atomics.add(this.a, REPLIES, 1);
  }
}
