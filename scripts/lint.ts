// `npm run lint`: the project's own rules (STYLE.md), checked over the source tree.
// - pure modules (config, scheduler, ipam, reconcile, admin/status, proxyproto, cli/table)
//   import no node:net, dgram, fs, child_process or timers;
// - no Math.random in lb/ (sh must be deterministic; tests seed their own PRNG);
// - no global prom-client registry (the registry is passed in);
// - every EDGEPORT_ERR_* code used in lb/ is declared in lb/core/errors.ts and documented in README.md;
// - no .only( left in tests; no TypeScript syntax that type stripping cannot erase (enum, namespace).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const problems: string[] = [];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...files(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const PURE = [/^lb\/config\/(?!load\.ts)/, /^lb\/scheduler\//, /^lb\/ipam\/(?!state)/, /^lb\/reconcile\/(desired|diff)\.ts$/, /^lb\/admin\/status\.ts$/, /^lb\/dataplane\/proxyproto\.ts$/, /^lb\/cli\/table\.ts$/, /^lb\/l2\/(arp|shared)\.ts$/, /^lb\/health\/state\.ts$/, /^lb\/k8s\/convert\.ts$/];
const IMPURE_IMPORT = /from ['"]node:(net|dgram|fs|fs\/promises|child_process|timers|timers\/promises|http)['"]/;
const errorsFile = readFileSync(join(root, 'lb/core/errors.ts'), 'utf8');
let readme = '';
try {
  readme = readFileSync(join(root, 'README.md'), 'utf8');
} catch {
  problems.push('README.md: missing');
}
const declared = new Set([...errorsFile.matchAll(/\b(EDGEPORT_ERR_[A-Z_]+)\b/g)].map((m) => m[1]!));
for (const code of declared) if (!readme.includes(code)) problems.push(`README.md: error code ${code} is not documented`);

const all = [...files('lb'), ...files('scripts'), ...files('test')];
for (const f of all) {
  const rel = relative('.', f);
  const text = readFileSync(join(root, f), 'utf8');
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const at = `${rel}:${i + 1}`;
    if (rel.startsWith('lb/') && PURE.some((re) => re.test(rel)) && IMPURE_IMPORT.test(line)) problems.push(`${at}: a pure module imports I/O: ${line.trim()}`);
    if (rel.startsWith('lb/') && /\bMath\.random\(/.test(line)) problems.push(`${at}: Math.random in lb/ (use deterministic inputs)`);
    if (/\bregister\b.*from ['"]prom-client['"]|prom-client['"].*\bregister\b|promClient\.register\b/.test(line)) problems.push(`${at}: the global prom-client registry; pass a Registry in`);
    if (rel.startsWith('test/') && /\b(it|test|describe)\.only\(/.test(line)) problems.push(`${at}: .only left in a test`);
    if (/^\s*(export\s+)?(const\s+)?enum\s+\w+/.test(line) || /^\s*(export\s+)?namespace\s+\w+/.test(line)) problems.push(`${at}: enum/namespace cannot be erased by type stripping`);
    for (const m of line.matchAll(/\b(EDGEPORT_ERR_[A-Z_]+)\b/g)) if (rel.startsWith('lb/') && !declared.has(m[1]!)) problems.push(`${at}: error code ${m[1]} is not declared in lb/core/errors.ts`);
  });
  if (!text.endsWith('\n')) problems.push(`${rel}: no newline at end of file`);
}

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`lint: ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  process.exit(1);
}
console.log(`lint: ${all.length} files clean`);
