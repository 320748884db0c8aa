// GET / in headless Chromium (Debian's package, driven by playwright-core): the page lists
// the backends and shows one turning red when it is killed.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { freePort, startEdgeport, tempDir, writeConfig } from '../support/proc.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

test('status page shows a backend turning red when it is killed', { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM}: apt-get install chromium` }, async (t) => {
  const tmp = tempDir();
  t.after(tmp.cleanup);
  const servers = await Promise.all(
    [0, 1, 2].map(
      () =>
        new Promise<net.Server>((resolve) => {
          const s = net.createServer((c) => {
            c.on('error', () => {});
            c.end('hi\n');
          });
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  t.after(() => servers.forEach((s) => s.close()));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  const adminPort = await freePort();
  const vipPort = await freePort('127.0.0.10');
  const config = writeConfig(
    tmp.dir,
    `node: { name: page-test }
announce: { mode: none }
admin: { listen: 127.0.0.1:${adminPort} }
state: { dir: ${tmp.dir}/state }
dataplane: { workers: 1 }
defaults:
  healthCheck: { interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }
services:
  - name: web
    address: 127.0.0.10
    ports:
      - port: ${vipPort}
        protocol: TCP
        backends:
${ports.map((p) => `          - { address: 127.0.0.1, port: ${p} }`).join('\n')}
`,
  );
  const ep = await startEdgeport(config, adminPort);
  t.after(() => ep.stop('SIGKILL'));

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${ep.admin}/`);
  await page.waitForSelector('tr.up[data-backend]');
  const rows = page.locator('tr[data-backend]');
  await page.waitForFunction(() => document.querySelectorAll('tr.up[data-backend]').length === 3);
  assert.equal(await rows.count(), 3);
  assert.equal(await page.locator('#node').textContent(), 'page-test');

  const victim = `127.0.0.1:${ports[1]}`;
  await new Promise<void>((r) => servers[1]!.close(() => r()));
  const red = page.locator(`tr.down[data-backend="${victim}"]`);
  await red.waitFor({ timeout: 10_000 });
  const colour = await red.locator('td.health').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(colour, 'rgb(224, 90, 90)');
  assert.equal(await red.locator('td.health').textContent(), 'DOWN');
  assert.equal(await page.locator('tr.up[data-backend]').count(), 2, 'the other two stay green');
  if (process.env.EDGEPORT_SCREENSHOT) await page.screenshot({ path: process.env.EDGEPORT_SCREENSHOT, fullPage: true });
});
