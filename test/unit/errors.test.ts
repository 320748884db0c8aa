import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError, EdgeportError, ErrorCodes, formatProblem } from '../../lb/core/errors.ts';

test('formatProblem prints path: message (line N)', () => {
  assert.equal(formatProblem({ path: 'services[1].ports[0].port', message: 'must be 1..65535, got 70000', line: 12 }), 'services[1].ports[0].port: must be 1..65535, got 70000 (line 12)');
});

test('ConfigError lists every problem in its message and keeps them', () => {
  const e = new ConfigError(
    [
      { path: 'a', message: 'x', line: 1 },
      { path: 'b[0]', message: 'y', line: 2 },
    ],
    '/etc/edgeport/config.yaml',
  );
  assert.equal(e.code, 'EDGEPORT_ERR_CONFIG_INVALID');
  assert.equal(e.problems.length, 2);
  assert.match(e.message, /"\/etc\/edgeport\/config.yaml": 2 problems\na: x \(line 1\)\nb\[0\]: y \(line 2\)/);
});

test('EdgeportError carries its stable code', () => {
  const e = new EdgeportError('EDGEPORT_ERR_BIND', 'Cannot bind');
  assert.equal(e.code, 'EDGEPORT_ERR_BIND');
  assert.ok(e instanceof Error);
});

test('every error code is documented in README.md', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const missing = Object.keys(ErrorCodes).filter((c) => !readme.includes(c));
  assert.deepEqual(missing, []);
});
