// state.dir on a real filesystem: the pool allocations of static services survive restarts,
// a corrupt file never stops the appliance, and a save is atomic.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { PoolSpec, Protocol } from '../../lb/core/types.ts';
import { Allocator } from '../../lb/ipam/allocator.ts';
import { STATE_FILE, loadState, saveState } from '../../lb/ipam/state.ts';
import { restoreStatic, type StaticServiceInput } from '../../lb/ipam/static.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeport-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const NOW = new Date('2025-03-04T05:06:07.089Z');
const ASIDE = `${STATE_FILE}.corrupt-2025-03-04T05-06-07-089Z`;

test('saveState then loadState gives the allocations back, in the documented shape, with no temp file left', async (t) => {
  const dir = join(await tempDir(t), 'var', 'lib', 'edgeport'); // created by saveState (mkdir -p)
  await saveState(dir, { web: '192.168.122.90', api: '2001:db8::5' });
  assert.deepEqual(await readdir(dir), [STATE_FILE]);
  assert.deepEqual(JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')), { version: 1, allocations: { api: '2001:db8::5', web: '192.168.122.90' } });
  assert.deepEqual(await loadState(dir), { allocations: { web: '192.168.122.90', api: '2001:db8::5' }, problems: [] });

  await saveState(dir, { web: '192.168.122.91' });
  assert.deepEqual(await loadState(dir), { allocations: { web: '192.168.122.91' }, problems: [] });
  assert.deepEqual(await readdir(dir), [STATE_FILE]);
});

test('loadState of a missing directory or file is an empty state without problems', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await loadState(dir), { allocations: {}, problems: [] });
  assert.deepEqual(await loadState(join(dir, 'nope')), { allocations: {}, problems: [] });
});

test('loadState moves a corrupt file aside, reports it and starts empty', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['garbage', 'not json {', /is not valid JSON/],
    ['empty file', '', /is not valid JSON/],
    ['wrong version', JSON.stringify({ version: 2, allocations: { web: '10.0.0.1' } }), /"version" is 2, not 1/],
    ['no version', JSON.stringify({ allocations: { web: '10.0.0.1' } }), /"version" is missing, not 1/],
    ['an array', '[]', /is not a JSON object/],
    ['allocations an array', JSON.stringify({ version: 1, allocations: ['10.0.0.1'] }), /"allocations" is not an object/],
    ['allocations missing', JSON.stringify({ version: 1 }), /"allocations" is not an object/],
  ];
  for (const [name, text, why] of cases) {
    const dir = await tempDir(t);
    await writeFile(join(dir, STATE_FILE), text);
    const r = await loadState(dir, { now: NOW });
    assert.deepEqual(r.allocations, {}, name);
    assert.equal(r.problems.length, 1, name);
    assert.match(r.problems[0]!, why, name);
    assert.ok(r.problems[0]!.startsWith(`Check "${join(dir, ASIDE)}"`), `${name}: ${r.problems[0]}`);
    assert.deepEqual((await readdir(dir)).sort(), [ASIDE], name);
    assert.equal(await readFile(join(dir, ASIDE), 'utf8'), text, `${name}: the bad file is kept for the operator`);
    // The next save and load are clean.
    await saveState(dir, { web: '10.0.0.1' });
    assert.deepEqual(await loadState(dir), { allocations: { web: '10.0.0.1' }, problems: [] }, name);
  }
});

test('loadState drops bad and duplicate addresses, one problem each, and keeps the rest', async (t) => {
  const dir = await tempDir(t);
  const text = JSON.stringify({
    version: 1,
    allocations: { web: '192.168.122.90', bad: 'nope', num: 5, nul: null, dup: '192.168.122.90', v6: '2001:DB8::1', dup6: '2001:db8:0::1', api: '192.168.122.91' },
  });
  await writeFile(join(dir, STATE_FILE), text);
  const r = await loadState(dir);
  assert.deepEqual(r.allocations, { web: '192.168.122.90', v6: '2001:db8::1', api: '192.168.122.91' });
  assert.equal(r.problems.length, 5, r.problems.join('\n'));
  assert.match(r.problems.join('\n'), /dropped service "bad", whose address "nope" is not an IP address/);
  assert.match(r.problems.join('\n'), /dropped service "num", whose address 5 is not an IP address/);
  assert.match(r.problems.join('\n'), /dropped service "dup", whose address "192\.168\.122\.90" is already saved for "web"/);
  assert.match(r.problems.join('\n'), /dropped service "dup6", whose address "2001:db8::1" is already saved for "v6"/);
  assert.deepEqual(await readdir(dir), [STATE_FILE], 'a readable file is not moved aside');
});

test('loadState reports an unreadable state file and starts empty', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, STATE_FILE)); // EISDIR on read
  const r = await loadState(dir);
  assert.deepEqual(r.allocations, {});
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /cannot read it \(EISDIR\)/);
});

test('a save that crashed before its rename leaves the old file, and its temp file is ignored and removed', async (t) => {
  const dir = await tempDir(t);
  await saveState(dir, { web: '192.168.122.90' });
  // What a crash between write and rename leaves: a complete or partial temp file.
  await writeFile(join(dir, `${STATE_FILE}.tmp-4242-1700000000000-0`), JSON.stringify({ version: 1, allocations: { web: '192.168.122.99' } }));
  await writeFile(join(dir, `${STATE_FILE}.tmp-4242-1700000000000-1`), '{"version": 1, "alloc');
  assert.deepEqual(await loadState(dir), { allocations: { web: '192.168.122.90' }, problems: [] });
  assert.deepEqual(await readdir(dir), [STATE_FILE]);
});

test('saveState fails with a message when state.dir cannot be made, leaving nothing behind', async (t) => {
  const base = await tempDir(t);
  await writeFile(join(base, 'file'), 'x');
  await assert.rejects(saveState(join(base, 'file', 'sub'), { web: '10.0.0.1' }), /^Error: Cannot save pool allocations to ".*file\/sub\/allocations\.json": /);
  assert.deepEqual(await readdir(base), ['file']);
});

test('concurrent saves leave one complete file and no temp files', async (t) => {
  const dir = await tempDir(t);
  const states = Array.from({ length: 20 }, (_, i) => ({ web: `10.0.0.${i + 1}` }));
  await Promise.all(states.map((s) => saveState(dir, s)));
  const r = await loadState(dir);
  assert.deepEqual(r.problems, []);
  assert.ok(states.some((s) => s.web === r.allocations['web']), JSON.stringify(r));
  assert.deepEqual(await readdir(dir), [STATE_FILE]);
});

// --- restarts -------------------------------------------------------------------------------------

const POOLS: PoolSpec[] = [
  { name: 'default', addresses: ['192.168.122.90-192.168.122.100'], autoAssign: true, avoidBuggyIPs: false },
  { name: 'v6', addresses: ['2001:db8:1::/64'], autoAssign: false, avoidBuggyIPs: false },
];

function svc(name: string, where: { pool?: string; address?: string }, port = 80, protocol: Protocol = 'TCP'): StaticServiceInput {
  return { name, ...where, ports: [{ port, protocol }] };
}

/** One start of the appliance: load, restore, save when needed. */
async function start(dir: string, services: StaticServiceInput[]) {
  const loaded = await loadState(dir);
  const r = restoreStatic(new Allocator(POOLS), services, loaded.allocations);
  if (r.changed) await saveState(dir, r.allocations);
  return { ...r, loadProblems: loaded.problems };
}

test('restoreStatic + saveState + loadState + restoreStatic keeps every pool address across restarts', async (t) => {
  const dir = await tempDir(t);
  const web = svc('web', { pool: 'default' });
  const api = svc('api', { pool: 'default' }, 443);
  const dns = svc('dns', { address: '192.168.122.90' }, 53, 'UDP');
  const six = svc('six', { pool: 'v6' });

  const first = await start(dir, [web, api, dns, six]);
  assert.deepEqual(Object.fromEntries(first.vips), { dns: '192.168.122.90', web: '192.168.122.91', api: '192.168.122.92', six: '2001:db8:1::' });
  assert.equal(first.changed, true);
  assert.deepEqual(first.problems, []);

  // Restart with nothing changed: same addresses, nothing to save.
  const second = await start(dir, [web, api, dns, six]);
  assert.deepEqual(second.vips, first.vips);
  assert.equal(second.changed, false);

  // Restart with the services reordered and a new one in front: nobody moves.
  const extra = svc('extra', { pool: 'default' });
  const third = await start(dir, [extra, six, dns, api, web]);
  for (const name of ['web', 'api', 'dns', 'six']) assert.equal(third.vips.get(name), first.vips.get(name), name);
  assert.equal(third.vips.get('extra'), '192.168.122.93');
  assert.equal(third.changed, true);

  // Restart with web removed: the others stay; its address is free for the next new service.
  const fourth = await start(dir, [extra, six, dns, api, svc('later', { pool: 'default' })]);
  assert.deepEqual(Object.fromEntries(fourth.vips), { dns: '192.168.122.90', six: '2001:db8:1::', api: '192.168.122.92', extra: '192.168.122.93', later: '192.168.122.91' });
  assert.deepEqual(JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')), {
    version: 1,
    allocations: { api: '192.168.122.92', extra: '192.168.122.93', later: '192.168.122.91', six: '2001:db8:1::' },
  });
  assert.deepEqual([...fourth.problems, ...fourth.loadProblems], []);
});

test('a corrupt state file costs the saved addresses but not the start, and is rewritten', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, STATE_FILE), '\u0000\u0000\u0000');
  const r = await start(dir, [svc('web', { pool: 'default' })]);
  assert.equal(r.loadProblems.length, 1);
  assert.equal(r.vips.get('web'), '192.168.122.90');
  assert.equal(r.changed, true);
  assert.deepEqual((await loadState(dir)).allocations, { web: '192.168.122.90' });
  assert.equal((await readdir(dir)).filter((n) => n.startsWith(`${STATE_FILE}.corrupt-`)).length, 1);
});
