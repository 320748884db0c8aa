// GET / : a live status page in the spirit of HAProxy's stats page. One self-contained HTML
// document (no build step, no external assets) that polls /status every second and draws
// services, VIPs, backends with a health colour, connections, rates and last change.

export function statusPage(node: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Edgeport ${escapeHtml(node)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
  h1 { font-size: 18px; margin: 0 0 .2em; }
  #meta { color: #666; margin-bottom: 1em; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 1.5em; background: #fff; }
  th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
  th { background: #333; color: #fff; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.svc td { background: #e8eef7; font-weight: 600; }
  tr.up td.health { background: #8fd18f; }
  tr.down td.health { background: #e05a5a; color: #fff; }
  tr.draining td.health { background: #f0c24b; }
  .panic { color: #b00; font-weight: 700; }
  .notbound { color: #b00; }
  #error { color: #b00; }
</style>
</head>
<body>
<h1>Edgeport <span id="node">${escapeHtml(node)}</span></h1>
<div id="meta">loading…</div>
<div id="error"></div>
<table id="backends">
  <thead><tr><th>service</th><th>VIP</th><th>port</th><th>scheduler</th><th>backend</th><th>weight</th><th>health</th><th>active</th><th>total</th><th>rate/s</th><th>connect failures</th><th>last check</th><th>last change</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
const prev = new Map();
let prevAt = 0;
function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function ago(iso) {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? s + 's ago' : s < 3600 ? Math.floor(s / 60) + 'm ago' : Math.floor(s / 3600) + 'h ago';
}
async function refresh() {
  try {
    const res = await fetch('/status', { cache: 'no-store' });
    const doc = await res.json();
    const now = Date.now();
    const dt = prevAt ? (now - prevAt) / 1000 : 0;
    document.getElementById('meta').textContent = (doc.ready ? 'ready' : 'NOT READY') + ' · updated ' + new Date(now).toLocaleTimeString();
    document.getElementById('error').textContent = '';
    const body = document.querySelector('#backends tbody');
    body.textContent = '';
    for (const s of doc.services) {
      for (const p of s.ports) {
        const head = document.createElement('tr');
        head.className = 'svc';
        cell(head, s.name);
        const owner = s.owner ? ' · on ' + s.owner + (s.preferredOwner && s.preferredOwner !== s.owner ? ' (prefers ' + s.preferredOwner + ')' : '') : ' · not served here';
        cell(head, (s.vip || ('pool ' + (s.pool || '?'))) + (s.vip ? owner : ''));
        const pc = cell(head, p.port + '/' + p.protocol + (p.listening ? '' : ' (not bound)'), p.listening ? '' : 'notbound');
        cell(head, p.scheduler);
        const note = cell(head, p.panic ? 'PANIC: every backend down, sending to all' : '', p.panic ? 'panic' : '');
        note.colSpan = 9;
        body.appendChild(head);
        for (const b of p.backends) {
          const id = s.name + '|' + p.port + '/' + p.protocol + '|' + b.address + ':' + b.port;
          const tr = document.createElement('tr');
          const state = b.draining ? 'draining' : b.up ? 'up' : 'down';
          tr.className = state;
          tr.dataset.backend = b.address + ':' + b.port;
          cell(tr, ''); cell(tr, ''); cell(tr, ''); cell(tr, '');
          cell(tr, b.address.includes(':') ? '[' + b.address + ']:' + b.port : b.address + ':' + b.port);
          cell(tr, String(b.weight), 'num');
          cell(tr, state.toUpperCase(), 'health');
          cell(tr, String(b.active), 'num');
          cell(tr, String(b.total), 'num');
          const before = prev.get(id);
          cell(tr, before !== undefined && dt > 0 ? ((b.total - before) / dt).toFixed(1) : '-', 'num');
          prev.set(id, b.total);
          cell(tr, String(b.connectFailures), 'num');
          cell(tr, b.lastCheck);
          cell(tr, ago(b.lastChange));
          body.appendChild(tr);
        }
      }
    }
    prevAt = now;
  } catch (err) {
    document.getElementById('error').textContent = 'cannot reach the appliance: ' + err;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
