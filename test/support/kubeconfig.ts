// Writes a kubeconfig for a plain-HTTP API server (the fake one), as kubectl and
// @kubernetes/client-node read it: one cluster, one user (a bearer token the fake ignores),
// one context, current-context set. For an http:// server the cluster also says
// insecure-skip-tls-verify: true: @kubernetes/client-node 2.x refuses plain HTTP without it
// ("HTTP protocol is not allowed when skipTLSVerify is not set or false"); kubectl does not care.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KubeconfigOptions {
  /** Directory to write into (default: a new temporary directory). */
  dir?: string;
  /** File name (default: kubeconfig). */
  name?: string;
  /** Default namespace of the context. */
  namespace?: string;
  /** Bearer token (default 'fake-token'); the fake API server accepts any or none. */
  token?: string;
}

export function kubeconfigYaml(server: string, opts: KubeconfigOptions = {}): string {
  const ns = opts.namespace ? `\n    namespace: ${opts.namespace}` : '';
  return `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${server}${server.startsWith('http:') ? '\n    insecure-skip-tls-verify: true' : ''}
users:
- name: fake
  user:
    token: ${opts.token ?? 'fake-token'}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake${ns}
current-context: fake
preferences: {}
`;
}

/** Write a kubeconfig for `server` (e.g. http://127.0.0.1:PORT); returns its path. */
export function writeKubeconfig(server: string, opts: KubeconfigOptions = {}): string {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'edgeport-kubeconfig-'));
  const path = join(dir, opts.name ?? 'kubeconfig');
  writeFileSync(path, kubeconfigYaml(server, opts), { mode: 0o600 });
  return path;
}
