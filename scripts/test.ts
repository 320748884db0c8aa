// `npm test`: runs every test file listed below with node:test, and fails when a listed
// file is missing, when a *.test.ts file on disk is not listed, or when no test ran.
// Usage: node scripts/test.ts [--only unit|integration|e2e] [file ...]

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every test file, explicitly. Order: fast pure tables first, then sockets, then the binary. */
export const TEST_FILES = [
  'test/unit/errors.test.ts',
  'test/unit/address.test.ts',
  'test/unit/config.test.ts',
  'test/unit/config-fuzz.test.ts',
  'test/unit/scheduler.test.ts',
  'test/unit/proxyproto.test.ts',
  'test/unit/log.test.ts',
  'test/unit/health.test.ts',
  'test/unit/allocator.test.ts',
  'test/unit/allocator-random.test.ts',
  'test/unit/arp.test.ts',
  'test/unit/docs.test.ts',
  'test/unit/k8s-convert.test.ts',
  'test/unit/ha-lease.test.ts',
  'test/integration/tcp.test.ts',
  'test/integration/epoll.test.ts',
  'test/integration/udp.test.ts',
  'test/integration/dataplane.test.ts',
  'test/integration/health.test.ts',
  'test/integration/ipam-state.test.ts',
  'test/integration/l2-netns.test.ts',
  'test/integration/fake-apiserver.test.ts',
  'test/integration/k8s-controller.test.ts',
  'test/integration/ha.test.ts',
  'test/integration/rbac.test.ts',
  'test/e2e/cli.test.ts',
  'test/e2e/run.test.ts',
  'test/e2e/page.test.ts',
  'test/e2e/resilience.test.ts',
  'test/e2e/l2.test.ts',
  'test/e2e/operate.test.ts',
  'test/e2e/k8s.test.ts',
  'test/e2e/k8s-netns.test.ts',
  'test/e2e/ha.test.ts',
];

function onDisk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...onDisk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args.splice(onlyIdx, 2)[1] : undefined;
let files = args.length > 0 ? args : TEST_FILES;
if (only) files = files.filter((f) => f.startsWith(`test/${only}/`));

const missing = TEST_FILES.filter((f) => !existsSync(join(root, f)));
const unlisted = onDisk('test').map((f) => relative('.', f)).filter((f) => !TEST_FILES.includes(f));
if (missing.length || unlisted.length) {
  for (const f of missing) console.error(`test runner: listed file is missing: ${f}`);
  for (const f of unlisted) console.error(`test runner: test file not listed in scripts/test.ts: ${f}`);
  process.exit(1);
}
if (files.length === 0) {
  console.error('test runner: no test file selected');
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=300000', ...files],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' } },
);
let out = '';
child.stdout.on('data', (d: Buffer) => {
  process.stdout.write(d);
  out += d.toString();
  if (out.length > 1 << 20) out = out.slice(-(1 << 16));
});
child.on('close', (code) => {
  const num = (name: string) => Number(new RegExp(`^ℹ ${name} (\\d+)`, 'm').exec(out)?.[1] ?? NaN);
  const tests = num('tests');
  const pass = num('pass');
  const fail = num('fail');
  const skipped = num('skipped');
  if (!(tests > 0)) {
    console.error('test runner: no test ran');
    process.exit(1);
  }
  console.log(`${pass} passed, ${fail} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code === 0 && fail === 0 ? 0 : 1);
});
