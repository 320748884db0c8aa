import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../lb/core/log.ts';

test('createLogger writes one JSON object a line with level, msg and fields', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', pretty: false, write: (l) => lines.push(l) });
  log.info('serving', { listener: '127.0.0.10:80/TCP' });
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(o.level, 'info');
  assert.equal(o.msg, 'serving');
  assert.equal(o.listener, '127.0.0.10:80/TCP');
  assert.match(String(o.time), /^\d{4}-\d\d-\d\dT/);
});

test('createLogger drops lines below its level and debugEnabled follows setLevel', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', pretty: false, write: (l) => lines.push(l) });
  log.debug('a');
  log.info('b');
  log.warn('c');
  log.error('d');
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { msg: string }).msg), ['c', 'd']);
  assert.equal(log.debugEnabled, false);
  log.setLevel('debug');
  assert.equal(log.debugEnabled, true);
  log.debug('e');
  assert.equal(lines.length, 3);
});

test('createLogger pretty mode writes readable text; child adds fields; errors become messages', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', pretty: true, write: (l) => lines.push(l) }).child({ worker: 1 });
  log.error('bind failed', { err: Object.assign(new Error('address in use'), { code: 'EADDRINUSE' }) });
  assert.match(lines[0]!, /ERROR bind failed {2}worker=1 err=address in use \(EADDRINUSE\)$/);
  assert.throws(() => JSON.parse(lines[0]!));
});
