// VIPs on this host: make them local (announce.mode arp), answer ARP for them, announce
// them when taken, withdraw them when given up. With announce.mode none, VIPs are only
// bound (loopback, lab, routed setups) and this only keeps the books.

import type { Logger } from '../core/log.ts';
import { EdgeportError } from '../core/errors.ts';
import { ensureSysctls, LocalVips } from '../l2/host.ts';
import { ArpResponder, type ConflictRecord } from '../l2/responder.ts';

export interface VipEvents {
  owned(vip: string, owned: boolean): void;
  conflict(c: ConflictRecord, iface: string): void;
}

export class VipManager {
  private readonly log: Logger;
  private readonly mode: 'arp' | 'none';
  readonly iface: string | undefined;
  private readonly local = new LocalVips();
  private responder: ArpResponder | undefined;
  /** VIPs local and bound. */
  private readonly bound = new Set<string>();
  /** VIPs taken: bound and, with arp, answered. */
  private readonly owned = new Set<string>();
  private gate: ((vip: string) => boolean) | undefined;
  /** VIPs given up whose local route stays while their connections drain. */
  private readonly leaving = new Map<string, NodeJS.Timeout>();
  private readonly events: VipEvents;

  constructor(opts: { log: Logger; mode: 'arp' | 'none'; iface?: string; events: VipEvents }) {
    this.log = opts.log;
    this.mode = opts.mode;
    this.iface = opts.iface;
    this.events = opts.events;
  }

  /** With arp: check and set the sysctls (or refuse), clear routes a crashed run left, start the responder. */
  async start(keep: readonly string[]): Promise<void> {
    if (this.mode !== 'arp') return;
    const iface = this.iface!;
    const { changed, problems } = await ensureSysctls(iface);
    for (const c of changed) this.log.info('sysctl set', { sysctl: c });
    if (problems.length > 0) {
      throw new EdgeportError('EDGEPORT_ERR_SYSCTL', `Cannot answer ARP on "${iface}": ${problems.length} sysctl${problems.length === 1 ? ' is' : 's are'} wrong and could not be set:\n${problems.map((p) => `  ${p.message}`).join('\n')}`);
    }
    const stale = await this.local.removeStale(keep);
    for (const v of stale) this.log.info('removed a VIP route left by an earlier run', { vip: v });
    this.responder = new ArpResponder({
      iface,
      onConflict: (c) => this.events.conflict(c, iface),
      onError: (err) => this.log.error('ARP responder problem', { code: 'EDGEPORT_ERR_ARP_SOCKET', interface: iface, err }),
    });
    try {
      await this.responder.start();
    } catch (err) {
      throw new EdgeportError('EDGEPORT_ERR_ARP_SOCKET', `Cannot answer ARP on "${iface}": ${(err as Error).message}`, { cause: err });
    }
  }

  /** Before binding: make new VIPs local so listeners can bind them. */
  async prepare(vips: readonly string[]): Promise<void> {
    for (const v of vips) {
      const t = this.leaving.get(v);
      if (t) {
        clearTimeout(t);
        this.leaving.delete(v);
      }
      if (this.mode === 'arp' && !this.bound.has(v)) await this.local.addLocal(v);
    }
  }

  /**
   * After binding: `vips` are local and bound. Own those the gate admits (all of them without
   * HA): answer ARP, announce the new ones at once; stop answering for the others at once. VIPs
   * no longer bound lose their route after `drainMs`.
   */
  commit(vips: readonly string[], drainMs: number): void {
    const want = new Set(vips);
    const gone = [...this.bound].filter((v) => !want.has(v));
    this.bound.clear();
    for (const v of vips) this.bound.add(v);
    this.refresh();
    if (this.mode !== 'arp') return;
    for (const v of gone) {
      const t = setTimeout(() => {
        this.leaving.delete(v);
        void this.local.removeLocal(v).catch((err: unknown) => this.log.warn('cannot remove VIP route', { vip: v, err }));
      }, drainMs);
      t.unref();
      this.leaving.set(v, t);
    }
  }

  /**
   * HA: own only the bound VIPs `gate` admits (the Leases we hold). The others stay local and
   * bound, so taking one over is only answering ARP and announcing it.
   */
  setGate(gate: ((vip: string) => boolean) | undefined): void {
    this.gate = gate;
    this.refresh();
  }

  /** Re-apply the gate (after the Leases held changed). */
  refresh(): void {
    const next = [...this.bound].filter((v) => !this.gate || this.gate(v));
    const want = new Set(next);
    const added = next.filter((v) => !this.owned.has(v));
    const removed = [...this.owned].filter((v) => !want.has(v));
    if (added.length === 0 && removed.length === 0) return;
    for (const v of removed) this.owned.delete(v);
    for (const v of added) this.owned.add(v);
    this.responder?.setOwned([...this.owned]);
    for (const v of added) {
      this.responder?.announce(v);
      this.events.owned(v, true);
      this.log.info('VIP taken', { vip: v, ...(this.iface ? { interface: this.iface } : {}) });
    }
    for (const v of removed) {
      this.events.owned(v, false);
      this.log.info('VIP released', { vip: v });
    }
  }

  boundVips(): string[] {
    return [...this.bound];
  }

  /** Every owned VIP has had its first gratuitous ARP (always true with mode none). */
  allAnnounced(): boolean {
    return !this.responder || this.responder.allAnnounced();
  }

  ownedVips(): string[] {
    return [...this.owned];
  }

  arpStats() {
    return this.responder?.stats();
  }

  /** SIGTERM: stop answering ARP at once; the routes stay while connections drain. */
  stopAnswering(): void {
    this.responder?.stopAnswering();
    for (const v of this.owned) this.events.owned(v, false);
  }

  /** After the drain: remove every route Edgeport added and close the ARP socket. */
  async close(): Promise<void> {
    for (const t of this.leaving.values()) clearTimeout(t);
    this.leaving.clear();
    if (this.mode === 'arp') await this.local.removeAll().catch((err: unknown) => this.log.warn('cannot remove VIP routes', { err }));
    await this.responder?.close();
  }
}
