// Configuration files for the proxies under test and the HTTP backend, written into the
// bench's temp dir. Every proxy gets the same four listeners on 127.0.0.1.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const HOST = '127.0.0.1';

/** Front (proxy) port -> backend port, one pair per test family. */
export const PORTS = {
  httpFront: 18080, // conn-rate, keepalive
  httpBack: 18081, // nginx static
  bulkFront: 18082, // tcp-bulk
  bulkBack: 18083, // iperf3 -s
  holdFront: 18084, // idle-mem
  holdBack: 18085, // loadgen tcp-echo
  udpFront: 18053, // udp
  udpBack: 18054, // loadgen udp-echo
  edgeportAdmin: 19470,
} as const;

const TCP_PAIRS: ReadonlyArray<readonly [number, number]> = [
  [PORTS.httpFront, PORTS.httpBack],
  [PORTS.bulkFront, PORTS.bulkBack],
  [PORTS.holdFront, PORTS.holdBack],
];

/** node-net and node-raw: the bare Node ceilings of node-proxy.ts (TCP only, on request). */
export type ProxyName = 'edgeport' | 'edgeport-raw' | 'haproxy' | 'nginx' | 'node-net' | 'node-raw';

export interface NginxInfo {
  streamLoadModule: string | null; // path for load_module, null when stream is built in
  runAsRoot: boolean;
}

export function nginxBackendConfig(dir: string, info: NginxInfo): string {
  mkdirSync(join(dir, 'temp'), { recursive: true });
  const file = join(dir, 'nginx.conf');
  writeFileSync(
    file,
    `# HTTP backend for conn-rate and keepalive: a tiny static response
${info.runAsRoot ? 'user root;' : ''}
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'temp')};
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {
    listen ${HOST}:${PORTS.httpBack} backlog=4096;
    location / { default_type text/plain; return 200 "ok\\n"; }
  }
}
`,
  );
  return file;
}

export function haproxyConfig(dir: string, threads: number): string {
  const file = join(dir, 'haproxy.cfg');
  const fronts = TCP_PAIRS.map(
    ([f, b]) => `
listen p${f}
  bind ${HOST}:${f}
  server s1 ${HOST}:${b}
`,
  ).join('');
  writeFileSync(
    file,
    `global
  nbthread ${threads}
  maxconn 9000
  pidfile ${join(dir, 'haproxy.pid')}

defaults
  mode tcp
  timeout connect 3s
  timeout client 1h
  timeout server 1h
${fronts}`,
  );
  return file;
}

export function nginxStreamConfig(dir: string, workers: number, info: NginxInfo): string {
  const file = join(dir, 'nginx-stream.conf');
  // reuseport: one listening socket per worker, as Edgeport's workers share each VIP:port
  const rp = workers > 1 ? ' reuseport' : '';
  const tcp = TCP_PAIRS.map(
    ([f, b]) => `  server { listen ${HOST}:${f}${rp} backlog=4096; proxy_pass ${HOST}:${b}; }\n`,
  ).join('');
  writeFileSync(
    file,
    `${info.streamLoadModule ? `load_module ${info.streamLoadModule};` : ''}
${info.runAsRoot ? 'user root;' : ''}
worker_processes ${workers};
worker_rlimit_nofile 20000;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 16000; }
stream {
  proxy_connect_timeout 3s;
  proxy_timeout 1h;
${tcp}  server {
    listen ${HOST}:${PORTS.udpFront} udp${rp};
    proxy_pass ${HOST}:${PORTS.udpBack};
    proxy_responses 1;
    proxy_timeout 30s;
  }
}
`,
  );
  return file;
}

/** Edgeport's configuration; `engine` set only to measure a TCP engine other than the default. */
export function edgeportConfig(dir: string, workers: number, engine?: string): string {
  const file = join(dir, 'edgeport.yaml');
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const tcp = TCP_PAIRS.map(
    ([f, b]) => `      - { port: ${f}, protocol: TCP, backends: [ { address: ${HOST}, port: ${b} } ] }\n`,
  ).join('');
  writeFileSync(
    file,
    `announce: { mode: none }
admin: { listen: ${HOST}:${PORTS.edgeportAdmin} }
state: { dir: ${stateDir} }
dataplane: { workers: ${workers}${engine ? `, engine: ${engine}` : ''} }
defaults: { healthCheck: { type: none } }
services:
  - name: bench
    address: ${HOST}
    ports:
${tcp}      - { port: ${PORTS.udpFront}, protocol: UDP, backends: [ { address: ${HOST}, port: ${PORTS.udpBack} } ] }
`,
  );
  return file;
}
