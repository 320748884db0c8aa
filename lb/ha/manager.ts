// HA: which of the VIPs this appliance serves, decided through Leases (SPEC "High
// availability"). The decisions are lb/ha/lease.ts; this file feeds them what the watch and our
// own writes show, carries out their actions through a Coordination, and tells the app which
// VIPs to answer ARP for (onOwned). It also holds this appliance's member Lease and competes
// for the leader Lease (the one appliance that allocates and writes Service status).
//
// Timing: decisions are re-evaluated on every Lease change the watch reports and every
// EVALUATE_MS besides (expiry is a matter of our clock, not of an event), and writes go out
// at most one per Lease at a time; a held Lease is renewed every ha.renewInterval.

import type { Logger } from '../core/log.ts';
import type { HaSpec } from '../core/types.ts';
import { apiStatus } from '../k8s/client.ts';
import { LeaseConflict, type Coordination, type Lease } from './coordination.ts';
import {
  decideLeader,
  decideVip,
  LEADER_LEASE,
  LeaseBook,
  memberLeaseName,
  UNHEALTHY_ANNOTATION,
  vipLeaseName,
  type Member,
} from './lease.ts';

const EVALUATE_MS = 50;
/** SIGTERM: how long the Lease releases may take before we exit anyway. */
const RELEASE_BUDGET_MS = 1000;

export interface HaOptions {
  coord: Coordination;
  /** node.name: the holderIdentity of our Leases. */
  self: string;
  cfg: HaSpec;
  log: Logger;
  now?: () => number;
  /** The VIPs to answer ARP for, after every change. */
  onOwned(owned: ReadonlySet<string>): void;
  /** Whether this appliance can serve `vip` (listeners bound, a backend up on every port). */
  healthy(vip: string): boolean;
  onLeader?(leader: boolean): void;
}

export interface VipOwnership {
  owner: string | null;
  preferredOwner: string | null;
  /** Since when (ms ago, our clock) the owner has held it. */
  leaseAgeMs: number | null;
  /** The owner has not renewed within ha.leaseDuration (as we judge it). */
  expired: boolean;
}

function newer(a: Lease, b: Lease | undefined): boolean {
  if (!b) return true;
  if (/^\d+$/.test(a.version) && /^\d+$/.test(b.version)) return BigInt(a.version) >= BigInt(b.version);
  return true;
}

export class HaManager {
  private readonly o: HaOptions;
  private readonly now: () => number;
  private readonly book: LeaseBook;
  /** The latest Lease objects known, from the watch or our own writes. */
  private readonly leases = new Map<string, Lease>();
  private vips: string[] = [];
  private readonly owned = new Set<string>();
  /** VIPs we stopped answering because another MAC announced them while our renewals failed. */
  private readonly yielded = new Set<string>();
  /** Lease name -> the write in flight (one at a time per Lease). */
  /** Writes in flight (stop() lets them land, so its releases carry the current version). */
  private readonly inflight = new Set<Promise<void>>();
  private readonly busy = new Map<string, 'acquire' | 'renew' | 'release'>();
  private readonly lastWrite = new Map<string, number>();
  private readonly lastOk = new Map<string, number>();
  private readonly handedOver = new Map<string, number>();
  private synced = false;
  private leader = false;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private published = '';
  private lastNsWarning = -Infinity;
  private evaluating = false;

  constructor(opts: HaOptions) {
    this.o = opts;
    this.now = opts.now ?? (() => performance.now());
    this.book = new LeaseBook(opts.cfg.leaseDuration);
  }

  start(): void {
    this.started = true;
    this.startedAt = this.now();
    this.o.coord.start({
      changed: (leases) => this.onLeases(leases),
      synced: (ok) => {
        if (ok && !this.synced) this.book.restart(this.now());
        if (ok !== this.synced) this.o.log.info(ok ? 'lease view current' : 'lease view stale: no VIP is taken over until it is current again', {});
        this.synced = ok;
        this.evaluate();
      },
    });
    this.timer = setInterval(() => this.evaluate(), Math.min(EVALUATE_MS, this.o.cfg.renewInterval));
  }

  /** The VIPs configured (static and Kubernetes): each gets a Lease. */
  setVips(vips: readonly string[]): void {
    this.vips = [...new Set(vips)].sort();
    this.evaluate();
  }

  isLeader(): boolean {
    return this.leader;
  }

  ownedVips(): ReadonlySet<string> {
    return this.owned;
  }

  /** Another MAC announced `vip`: yield it if we could not renew within a lease duration (SPEC). */
  foreignAnnouncement(vip: string): void {
    if (!this.owned.has(vip)) return;
    const name = vipLeaseName(vip);
    const since = this.now() - (this.lastOk.get(name) ?? -Infinity);
    if (since < this.o.cfg.leaseDuration) return;
    this.yielded.add(vip);
    this.drop(vip, `another appliance announced it and our Lease was not renewed for ${Math.round(since)} ms`);
  }

  view(vip: string): VipOwnership {
    const now = this.now();
    const st = this.book.state(vipLeaseName(vip), now);
    const unhealthy = this.unhealthyVips();
    const pref = this.decide(vip, now, this.members(now, unhealthy), unhealthy).preferred;
    return {
      owner: st.holder === '' ? null : st.holder,
      preferredOwner: pref ?? null,
      leaseAgeMs: st.heldSince === undefined ? null : Math.round(now - st.heldSince),
      expired: st.expired,
    };
  }

  /** SIGTERM: stop answering, then release the member Lease, the VIP Leases and the leader Lease. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.owned.size > 0) {
      this.owned.clear();
      this.o.onOwned(this.owned);
    }
    // A renewal in flight would make our release a stale compare-and-swap (409), leaving the
    // Lease to expire: let it land first.
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => setTimeout(r, RELEASE_BUDGET_MS / 2).unref())]);
    const held = [...this.leases.values()].filter((l) => l.holder === this.o.self && l.name !== memberLeaseName(this.o.self));
    const release = async (l: Lease) => {
      try {
        await this.o.coord.release(l);
      } catch (err) {
        this.o.log.warn('cannot release Lease; peers take it when it expires', { lease: l.name, err: String((err as Error)?.message ?? err) });
      }
    };
    const all = (async () => {
      const member = this.leases.get(memberLeaseName(this.o.self));
      if (member && member.holder === this.o.self) await release(member);
      await Promise.all(held.map(release));
    })();
    await Promise.race([all, new Promise((r) => setTimeout(r, RELEASE_BUDGET_MS).unref())]);
    await this.o.coord.stop();
  }

  private onLeases(leases: readonly Lease[]): void {
    const now = this.now();
    const seen = new Set<string>();
    // The watch can lag behind our own writes (a list taken before our create, an event for the
    // version before our renewal): an older view than the one we wrote is not news.
    for (const l of leases) {
      seen.add(l.name);
      if (!newer(l, this.leases.get(l.name))) continue;
      this.leases.set(l.name, l);
      this.book.observe(l.name, { holder: l.holder, renewTime: l.renewTime, annotations: l.annotations }, now);
    }
    for (const name of [...this.leases.keys()]) {
      if (seen.has(name) || now - (this.lastOk.get(name) ?? -Infinity) < 2 * this.o.cfg.leaseDuration) continue;
      this.book.observe(name, undefined, now);
      this.leases.delete(name);
    }
    this.evaluate();
  }

  /** The live members, this appliance with the VIPs it cannot serve now. Once per step: healthy() walks the listeners. */
  private members(now: number, unhealthy: ReadonlySet<string>): Member[] {
    const list = this.book.members(now).filter((m) => m.name !== this.o.self);
    list.push({ name: this.o.self, liveSince: this.startedAt, unhealthy });
    return list;
  }

  private unhealthyVips(): Set<string> {
    return new Set(this.vips.filter((v) => !this.o.healthy(v)));
  }

  private decide(vip: string, now: number, members: readonly Member[], unhealthy: ReadonlySet<string>) {
    return decideVip({
      vip,
      self: this.o.self,
      now,
      durationMs: this.o.cfg.leaseDuration,
      holdDownMs: this.o.cfg.holdDown,
      lease: this.book.state(vipLeaseName(vip), now),
      members,
      healthy: !unhealthy.has(vip),
      synced: this.synced,
      handedOverAt: this.handedOver.get(vip),
    });
  }

  private evaluate(): void {
    if (!this.started || this.stopped || this.evaluating) return;
    this.evaluating = true;
    try {
      this.step(this.now());
    } finally {
      this.evaluating = false;
    }
  }

  private step(now: number): void {
    const self = this.o.self;
    const renewDue = (name: string) => now - (this.lastWrite.get(name) ?? -Infinity) >= this.o.cfg.renewInterval;

    // Our member Lease: held always, renewed with the VIPs we cannot serve.
    const unhealthySet = this.unhealthyVips();
    const members = this.members(now, unhealthySet);
    const unhealthy = [...unhealthySet].join(',');
    const memberName = memberLeaseName(self);
    const member = this.leases.get(memberName);
    const ann = { [UNHEALTHY_ANNOTATION]: unhealthy };
    if (member?.holder === self) {
      if (renewDue(memberName) || unhealthy !== this.published) this.write(memberName, 'renew', () => this.o.coord.renew(member, this.o.cfg.leaseDuration, ann), () => (this.published = unhealthy));
    } else if (this.synced && renewDue(memberName)) {
      this.write(memberName, 'acquire', () => this.o.coord.acquire(memberName, self, this.o.cfg.leaseDuration, member, ann), () => (this.published = unhealthy));
    }

    // The leader Lease.
    const ls = this.book.state(LEADER_LEASE, now);
    const la = decideLeader(ls, self, this.synced);
    const leaderLease = this.leases.get(LEADER_LEASE);
    if (la === 'acquire') this.write(LEADER_LEASE, 'acquire', () => this.o.coord.acquire(LEADER_LEASE, self, this.o.cfg.leaseDuration, leaderLease));
    else if (la === 'keep' && leaderLease && renewDue(LEADER_LEASE)) this.write(LEADER_LEASE, 'renew', () => this.o.coord.renew(leaderLease, this.o.cfg.leaseDuration));
    this.setLeader(ls.holder === self && (!ls.expired || now - (this.lastOk.get(LEADER_LEASE) ?? -Infinity) < this.o.cfg.leaseDuration));

    // The VIPs.
    const want = new Set(this.vips);
    for (const vip of this.vips) {
      const name = vipLeaseName(vip);
      const st = this.book.state(name, now);
      const lease = this.leases.get(name);
      if (st.holder !== self && st.holder !== '' && this.owned.has(vip) && !this.busy.has(name)) {
        this.drop(vip, `the Lease is held by ${st.holder}`);
      }
      if (st.holder !== self) this.yielded.delete(vip);
      const d = this.decide(vip, now, members, unhealthySet);
      switch (d.action) {
        case 'acquire':
          this.write(name, 'acquire', () => this.o.coord.acquire(name, self, this.o.cfg.leaseDuration, lease), () => this.take(vip, d.why));
          break;
        case 'keep':
          // A release in flight: the view still names us until it lands.
          if (this.busy.get(name) === 'release') break;
          // Taken again from our view alone only while our last write of the Lease is within a
          // lease duration: past it, peers may have judged it expired and taken it (a release
          // that failed, a restart); the renewal below takes it once it lands.
          if (!this.owned.has(vip) && !this.yielded.has(vip) && now - (this.lastOk.get(name) ?? -Infinity) < this.o.cfg.leaseDuration) this.take(vip, 'the Lease names us');
          if (lease && renewDue(name)) this.write(name, 'renew', () => this.o.coord.renew(lease, this.o.cfg.leaseDuration), () => this.take(vip, 'renewed'));
          break;
        case 'release':
          if (!lease || this.busy.has(name)) break;
          if (d.why.startsWith('hand over')) this.handedOver.set(vip, now);
          this.drop(vip, d.why);
          this.write(name, 'release', () => this.o.coord.release(lease));
          break;
        case 'wait':
          break;
      }
    }
    // VIPs no longer configured: give their Leases up.
    for (const [name, lease] of this.leases) {
      if (!name.startsWith('edgeport-vip-') || lease.holder !== self) continue;
      const vip = [...this.owned].find((v) => vipLeaseName(v) === name);
      if (vip !== undefined && want.has(vip)) continue;
      if (this.vips.some((v) => vipLeaseName(v) === name)) continue;
      if (vip !== undefined) this.drop(vip, 'no longer configured');
      this.write(name, 'release', () => this.o.coord.release(lease));
    }
  }

  private take(vip: string, why: string): void {
    this.yielded.delete(vip);
    if (this.owned.has(vip) || this.stopped || !this.vips.includes(vip)) return;
    this.owned.add(vip);
    this.o.log.info('VIP Lease held: serving', { vip, why });
    this.o.onOwned(this.owned);
  }

  private drop(vip: string, why: string): void {
    if (!this.owned.delete(vip)) return;
    this.o.log.info('VIP Lease given up: not serving', { vip, why });
    this.o.onOwned(this.owned);
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.o.log.info(leader ? 'elected leader: allocating and writing Service status' : 'not the leader', {});
    this.o.onLeader?.(leader);
  }

  /** One write per Lease at a time; the result updates our view at once. */
  private write(name: string, what: 'acquire' | 'renew' | 'release', f: () => Promise<Lease>, ok?: () => void): void {
    if (this.busy.has(name) || this.stopped) return;
    this.busy.set(name, what);
    const sent = this.now();
    this.lastWrite.set(name, sent);
    const p = f().then(
      (l) => {
        this.busy.delete(name);
        this.lastOk.set(name, sent);
        if (newer(l, this.leases.get(name))) this.leases.set(name, l);
        this.book.observe(name, { holder: l.holder, renewTime: l.renewTime, annotations: l.annotations }, this.now());
        if (this.stopped) return;
        if (what !== 'release') ok?.();
        this.evaluate();
      },
      (err: unknown) => {
        this.busy.delete(name);
        if (this.stopped) return;
        if (err instanceof LeaseConflict) {
          this.o.log.debug('lease write lost a race', { lease: name, what });
          return;
        }
        if (apiStatus(err) === 404 && what === 'acquire') {
          const now = this.now();
          if (now - this.lastNsWarning > 30_000) {
            this.lastNsWarning = now;
            this.o.log.warn(`ha.leaseNamespace "${this.o.cfg.leaseNamespace}" does not exist: create it (kubectl create namespace ${this.o.cfg.leaseNamespace}); retrying`, { code: 'EDGEPORT_ERR_HA_NAMESPACE' });
          }
          return;
        }
        this.o.log.warn(`cannot ${what} Lease; will retry`, { lease: name, err: String((err as Error)?.message ?? err) });
      },
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }
}
