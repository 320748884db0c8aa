// What the data plane should run, from the configuration and the VIPs assigned so far. Pure.

import { listenerKey, type Config, type ServiceSpec } from '../core/types.ts';
import type { ListenerSpec } from '../dataplane/types.ts';

/** The VIP of a service: its fixed address, or the one allocated from its pool (if any yet). */
export function serviceVip(svc: ServiceSpec, allocated: ReadonlyMap<string, string>): string | undefined {
  return svc.address ?? allocated.get(svc.name);
}

export function desiredListeners(cfg: Config, allocated: ReadonlyMap<string, string>): ListenerSpec[] {
  const out: ListenerSpec[] = [];
  for (const svc of cfg.services) {
    const vip = serviceVip(svc, allocated);
    if (vip === undefined) continue;
    for (const p of svc.ports) {
      out.push({ key: listenerKey(vip, p.port, p.protocol), service: svc.name, vip, spec: p });
    }
  }
  return out;
}
