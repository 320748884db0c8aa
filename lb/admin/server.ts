// The admin listener: /healthz, /readyz, /metrics, /status (and / for people).

import http from 'node:http';
import type { Logger } from '../core/log.ts';

export interface AdminHandlers {
  ready(): { ok: boolean; reasons: string[] };
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): Promise<unknown>;
  page?(): string;
}

export function startAdmin(listen: { host: string; port: number }, h: AdminHandlers, log: Logger): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    switch (url) {
      case '/healthz':
        return send(200, 'text/plain', 'ok\n');
      case '/readyz': {
        const r = h.ready();
        return send(r.ok ? 200 : 503, 'text/plain', r.ok ? 'ready\n' : `not ready\n${r.reasons.map((x) => `- ${x}\n`).join('')}`);
      }
      case '/metrics':
        h.metrics().then(
          (m) => send(200, m.contentType, m.body),
          (err: unknown) => {
            log.error('metrics failed', { err });
            send(500, 'text/plain', 'metrics failed\n');
          },
        );
        return;
      case '/status':
        h.status().then(
          (s) => send(200, 'application/json', JSON.stringify(s, null, 2) + '\n'),
          (err: unknown) => {
            log.error('status failed', { err });
            send(500, 'text/plain', 'status failed\n');
          },
        );
        return;
      case '/':
        if (h.page) return send(200, 'text/html; charset=utf-8', h.page());
        return send(200, 'text/plain', 'edgeport admin: /status /metrics /healthz /readyz\n');
      default:
        return send(404, 'text/plain', 'not found\n');
    }
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
