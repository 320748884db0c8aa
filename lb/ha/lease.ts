// Who owns a VIP: pure decisions over the Leases as this appliance has seen them, with the
// time passed in (SPEC "High availability"). No I/O here: lb/ha/manager.ts feeds the
// observations and carries out the actions through a Coordination (lb/ha/coordination.ts).
//
// Expiry is judged the way client-go's leader election judges it: by our own clock, since we
// last saw the Lease change (holder or renewTime), with our own ha.leaseDuration. The holder's
// clock and the leaseDurationSeconds it wrote are never compared with ours.
//
// Membership: every appliance holds a Lease of its own (`edgeport-member-<node.name>`) and
// renews it with the VIP Leases; a member is live while that Lease is held and not expired.
// Its annotation `edgeport.io/unhealthy` lists the VIPs it cannot serve (a listener failed,
// or every backend of a port is down), so peers know who can take a VIP over.

import { hashString } from '../scheduler/hash.ts';

export const VIP_LEASE_PREFIX = 'edgeport-vip-';
export const MEMBER_LEASE_PREFIX = 'edgeport-member-';
export const LEADER_LEASE = 'edgeport-leader';
export const UNHEALTHY_ANNOTATION = 'edgeport.io/unhealthy';

/** SPEC: `edgeport-vip-` + the address with `.` or `:` as `-`. */
export function vipLeaseName(vip: string): string {
  return VIP_LEASE_PREFIX + vip.toLowerCase().replace(/[.:]/g, '-');
}

/** A member Lease name: node.name lower-cased, anything a Lease name cannot hold as `-`. */
export function memberLeaseName(node: string): string {
  return MEMBER_LEASE_PREFIX + node.toLowerCase().replace(/[^a-z0-9.-]/g, '-').replace(/[-.]+$/, '');
}

/** Rendezvous (highest random weight) hashing: the member that `vip` prefers. */
export function preferredOf(vip: string, members: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const score = hashString(`${m}\u0000${vip}`);
    if (score > bestScore || (score === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/** What this appliance reads of a Lease. */
export interface LeaseView {
  /** '' when free (released or never held). */
  holder: string;
  /** The renewTime as written; only compared for change. */
  renewTime: string;
  annotations?: Readonly<Record<string, string>>;
}

interface Seen {
  holder: string;
  renewTime: string;
  /** Our clock when the Lease last changed (holder or renewTime), or when the clocks restarted. */
  at: number;
  /** Our clock when the current holder took it (or we first saw it held). */
  heldSince: number;
  /** The holder before it was released (a free Lease remembers who let it go). */
  lastHolder: string;
  annotations: Readonly<Record<string, string>>;
}

export interface LeaseState {
  /** The holder, '' when free; an expired Lease still names its holder here. */
  holder: string;
  expired: boolean;
  /** Our clock since which the Lease has been free or expired (undefined while held). */
  freeSince: number | undefined;
  /** Our clock when the Lease last changed. */
  seenAt: number;
  heldSince: number | undefined;
  lastHolder: string;
}

/** The Leases as seen, with our clock. */
export class LeaseBook {
  private readonly seen = new Map<string, Seen>();
  private readonly durationMs: number;
  /** When our view last became current (a (re)list): never-seen Leases are free since then. */
  private syncedAt = 0;

  constructor(durationMs: number) {
    this.durationMs = durationMs;
  }

  /** A Lease as listed or watched; undefined: it does not exist (deleted). */
  observe(name: string, view: LeaseView | undefined, now: number): void {
    const prev = this.seen.get(name);
    const holder = view?.holder ?? '';
    const renewTime = view?.renewTime ?? '';
    const annotations = view?.annotations ?? {};
    if (prev && prev.holder === holder && prev.renewTime === renewTime) {
      prev.annotations = annotations;
      return;
    }
    const sameHolderStillLive = prev !== undefined && prev.holder === holder && holder !== '' && now - prev.at < this.durationMs;
    this.seen.set(name, {
      holder,
      renewTime,
      at: now,
      heldSince: sameHolderStillLive ? prev.heldSince : now,
      lastHolder: holder !== '' ? holder : prev ? prev.holder || prev.lastHolder : '',
      annotations,
    });
  }

  /**
   * Our view became current again after a gap (the watch was re-listed): every Lease's clock
   * restarts now, so an owner that could not renew while the API server was away gets a full
   * lease duration to renew before anyone judges it expired (SPEC: owners renew first).
   */
  restart(now: number): void {
    this.syncedAt = now;
    for (const s of this.seen.values()) s.at = now;
  }

  state(name: string, now: number): LeaseState {
    const s = this.seen.get(name);
    if (!s) return { holder: '', expired: false, freeSince: this.syncedAt, seenAt: this.syncedAt, heldSince: undefined, lastHolder: '' };
    if (s.holder === '') return { holder: '', expired: false, freeSince: s.at, seenAt: s.at, heldSince: undefined, lastHolder: s.lastHolder };
    const expired = now - s.at >= this.durationMs;
    return { holder: s.holder, expired, freeSince: expired ? s.at + this.durationMs : undefined, seenAt: s.at, heldSince: s.heldSince, lastHolder: s.lastHolder };
  }

  /** Live members (member Lease held and not expired), with when they became live and the VIPs they cannot serve. */
  members(now: number): Member[] {
    const out: Member[] = [];
    for (const [name, s] of this.seen) {
      if (!name.startsWith(MEMBER_LEASE_PREFIX) || s.holder === '' || now - s.at >= this.durationMs) continue;
      const unhealthy = (s.annotations[UNHEALTHY_ANNOTATION] ?? '').split(',').filter((v) => v !== '');
      out.push({ name: s.holder, liveSince: s.heldSince, unhealthy: new Set(unhealthy) });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

export interface Member {
  name: string;
  /** Our clock since the member has been continuously live. */
  liveSince: number;
  unhealthy: ReadonlySet<string>;
}

export interface VipDecisionInput {
  vip: string;
  self: string;
  now: number;
  durationMs: number;
  holdDownMs: number;
  lease: LeaseState;
  /** Live members, this appliance included (it is live while it runs). */
  members: readonly Member[];
  /** This appliance can serve the VIP (listeners bound, a backend up on every port). */
  healthy: boolean;
  /** Our Lease view is current (the watch is up since its last list). */
  synced: boolean;
  /** Our clock when we last handed this VIP over (a failed handover restarts the hold-down). */
  handedOverAt?: number | undefined;
}

export type VipAction = 'acquire' | 'keep' | 'release' | 'wait';

export interface VipDecision {
  action: VipAction;
  preferred: string | undefined;
  why: string;
}

/** Candidates for a VIP: live members that can serve it, or every live member when none can. */
export function candidates(vip: string, members: readonly Member[], exclude?: string): string[] {
  const live = members.filter((m) => m.name !== exclude);
  const healthy = live.filter((m) => !m.unhealthy.has(vip));
  return (healthy.length > 0 ? healthy : live).map((m) => m.name);
}

/**
 * One VIP, one step. The preferred owner is the rendezvous choice among the candidates (an
 * expired holder is no candidate: it stopped renewing; the holder never excludes itself). A
 * free or expired Lease goes to the preferred owner at once; anyone else takes it only after
 * it stayed free for one lease duration. The holder keeps it unless it cannot serve it while
 * a peer can, or the preferred owner has been live for the hold-down (a clean handover:
 * release, the preferred one acquires).
 */
export function decideVip(i: VipDecisionInput): VipDecision {
  const { lease, self, vip, now } = i;
  // Our own Lease expiring in our own view (renewals failing: the API server away or cut
  // off) is no reason to hand over: we keep serving until another MAC announces the VIP.
  const excluded = lease.holder !== '' && lease.holder !== self && lease.expired ? lease.holder : undefined;
  const cands = candidates(vip, i.members, excluded);
  const preferred = preferredOf(vip, cands);
  if (lease.holder === self) {
    const healthyPeer = i.members.some((m) => m.name !== self && !m.unhealthy.has(vip));
    if (!i.healthy && healthyPeer) return { action: 'release', preferred, why: 'cannot serve it and a peer can' };
    if (preferred !== undefined && preferred !== self) {
      const p = i.members.find((m) => m.name === preferred);
      const since = Math.max(p?.liveSince ?? now, i.handedOverAt ?? -Infinity);
      if (now - since >= i.holdDownMs) return { action: 'release', preferred, why: `hand over to the preferred owner ${preferred}` };
    }
    return { action: 'keep', preferred, why: 'held' };
  }
  if (lease.holder !== '' && !lease.expired) return { action: 'wait', preferred, why: `held by ${lease.holder}` };
  if (!i.synced) return { action: 'wait', preferred, why: 'the Lease view is not current' };
  if (preferred === self) return { action: 'acquire', preferred, why: lease.holder === '' ? 'free; preferred owner' : `expired (${lease.holder}); preferred owner` };
  if (!i.healthy && cands.some((c) => c !== self)) return { action: 'wait', preferred, why: 'cannot serve it' };
  const freeFor = now - (lease.freeSince ?? now);
  if (freeFor >= i.durationMs) return { action: 'acquire', preferred, why: `free for ${freeFor} ms; the preferred owner ${preferred ?? '?'} did not take it` };
  return { action: 'wait', preferred, why: `free; the preferred owner is ${preferred ?? '?'}` };
}

/** The leader Lease: no preference; whoever sees it free or expired first takes it. */
export function decideLeader(lease: LeaseState, self: string, synced: boolean): VipAction {
  if (lease.holder === self) return 'keep';
  if (lease.holder !== '' && !lease.expired) return 'wait';
  return synced ? 'acquire' : 'wait';
}
