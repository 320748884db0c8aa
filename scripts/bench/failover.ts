// HA failover times: two edgeport appliances in network namespaces (test/support/ha-lab.ts),
// a client opening a new TCP connection to the VIP every 50 ms. Failover time = from the
// owner's death (kill -9 of everything in its namespace) or SIGTERM, to the end of the first
// new connection served through the other appliance. Median and worst of N (default 10) each.
// Needs root (ip netns). Usage: node scripts/bench/failover.ts [--runs N] [--json FILE]

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { HaLab, killNamespace, wallNow, type Appliance, type Attempt } from '../../test/support/ha-lab.ts';
import { netnsSkipReason } from '../../test/support/netns.ts';

export interface FailoverResult {
  crashMs: number[];
  cleanMs: number[];
}

function firstServedAfter(attempts: readonly Attempt[], t0: number, old: Appliance): Attempt | undefined {
  return attempts.filter((x) => x.end >= t0 && x.via && x.via !== old.addr).sort((a, b) => a.end - b.end)[0];
}

async function owner(lab: HaLab): Promise<Appliance> {
  return lab.waitFor('a VIP owner', async () => {
    const h = await lab.holders();
    const name = h.get(lab.vips[0]!);
    const a = lab.appliances.find((x) => x.name === name);
    return a && a.child && a.child.exitCode === null ? a : undefined;
  });
}

async function once(lab: HaLab, how: 'crash' | 'clean'): Promise<number> {
  const old = await owner(lab);
  const loop = lab.connectLoop(lab.vips[0]!, 50);
  await new Promise((r) => setTimeout(r, 500));
  const t0 = wallNow();
  if (how === 'crash') await killNamespace(old.ns);
  else old.child!.kill('SIGTERM');
  await lab.waitFor('a connection through the other appliance', () => firstServedAfter(loop.attempts, t0, old), 10_000);
  const gap = firstServedAfter(await loop.stop(), t0, old)!.end - t0;
  if (how === 'clean') await new Promise((r) => (old.child!.exitCode !== null ? r(null) : old.child!.once('exit', r)));
  lab.start(old);
  await lab.waitReady(old);
  // Let the hold-down (2 s) pass so the VIP may move back before the next round.
  await new Promise((r) => setTimeout(r, 2500));
  return gap;
}

export async function measureFailover(runs: number, log: (s: string) => void = () => {}): Promise<FailoverResult> {
  const lab = await HaLab.create({ appliances: 2, vips: 1, subnet: `10.234.${100 + (process.pid % 50)}` });
  try {
    for (const a of lab.appliances) {
      lab.start(a);
      await lab.waitReady(a);
    }
    const crashMs: number[] = [];
    const cleanMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      crashMs.push(await once(lab, 'crash'));
      log(`  crash ${i + 1}/${runs}: ${crashMs.at(-1)!.toFixed(0)} ms`);
    }
    for (let i = 0; i < runs; i++) {
      cleanMs.push(await once(lab, 'clean'));
      log(`  clean ${i + 1}/${runs}: ${cleanMs.at(-1)!.toFixed(0)} ms`);
    }
    return { crashMs, cleanMs };
  } finally {
    await lab.cleanup();
  }
}

export function summarize(ms: readonly number[]): { median: number; worst: number } {
  const s = [...ms].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median: Math.round(mid), worst: Math.round(s.at(-1) ?? NaN) };
}

export function failoverTable(r: FailoverResult): string {
  const c = summarize(r.crashMs);
  const k = summarize(r.cleanMs);
  return [
    '| HA failover (first new connection through the new owner) | median | worst | target |',
    '| --- | --- | --- | --- |',
    `| owner killed (kill -9), ${r.crashMs.length} runs | ${c.median} ms | ${c.worst} ms | ≤ 2000 ms |`,
    `| owner stopped (SIGTERM), ${r.cleanMs.length} runs | ${k.median} ms | ${k.worst} ms | ≤ 500 ms |`,
  ].join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, json: { type: 'string' } } });
  const skip = netnsSkipReason();
  if (skip) {
    console.error(`failover benchmark skipped: ${skip}`);
    process.exit(0);
  }
  const r = await measureFailover(Number(values.runs), (s) => console.error(s));
  console.log(failoverTable(r));
  if (values.json) writeFileSync(values.json, JSON.stringify(r, null, 2));
}
