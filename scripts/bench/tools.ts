// Finds the external tools the bench needs and tells exactly what to install when some are missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export type Tool = 'haproxy' | 'nginx' | 'nginx-stream' | 'wrk' | 'iperf3' | 'cc' | 'taskset';

/** Debian packages providing each tool. */
export const PACKAGES: Record<Tool, readonly string[]> = {
  haproxy: ['haproxy'],
  nginx: ['nginx-light'],
  'nginx-stream': ['libnginx-mod-stream'],
  wrk: ['wrk'],
  iperf3: ['iperf3'],
  cc: ['gcc', 'libc6-dev'],
  taskset: ['util-linux'],
};

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function which(cmd: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SBIN];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export interface ToolPaths {
  haproxy: string | null;
  nginx: string | null;
  nginxStreamModule: string | null; // load_module path; '' when stream is built in
  wrk: string | null;
  iperf3: string | null;
  cc: string | null;
  taskset: string | null;
}

const STREAM_MODULE_PATHS = [
  '/usr/lib/nginx/modules/ngx_stream_module.so',
  '/usr/lib64/nginx/modules/ngx_stream_module.so',
  '/usr/share/nginx/modules/ngx_stream_module.so',
];

export function findTools(): ToolPaths {
  const nginx = which('nginx');
  let nginxStreamModule: string | null = null;
  if (nginx) {
    const v = spawnSync(nginx, ['-V'], { encoding: 'utf8' });
    const conf = `${v.stdout}${v.stderr}`;
    if (/--with-stream(\s|$)/.test(conf)) nginxStreamModule = '';
    else nginxStreamModule = STREAM_MODULE_PATHS.find((p) => existsSync(p)) ?? null;
  }
  return {
    haproxy: which('haproxy'),
    nginx,
    nginxStreamModule,
    wrk: which('wrk'),
    iperf3: which('iperf3'),
    cc: which('cc') ?? which('gcc'),
    taskset: which('taskset'),
  };
}

export function missingTools(paths: ToolPaths, needed: ReadonlySet<Tool>): Tool[] {
  const have: Record<Tool, boolean> = {
    haproxy: paths.haproxy !== null,
    nginx: paths.nginx !== null,
    'nginx-stream': paths.nginxStreamModule !== null,
    wrk: paths.wrk !== null,
    iperf3: paths.iperf3 !== null,
    cc: paths.cc !== null,
    taskset: paths.taskset !== null,
  };
  return [...needed].filter((t) => !have[t]);
}

export function packagesFor(tools: readonly Tool[]): string[] {
  return [...new Set(tools.flatMap((t) => PACKAGES[t]))];
}

/** Runs apt-get for the given packages, output shown to the user. Returns true on success. */
export function aptInstall(pkgs: readonly string[]): boolean {
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const steps: string[][] = [
    [...sudo, 'apt-get', 'update'],
    [...sudo, 'apt-get', 'install', '-y', ...pkgs],
  ];
  for (const argv of steps) {
    console.log(`$ ${argv.join(' ')}`);
    const r = spawnSync(argv[0]!, argv.slice(1), { stdio: 'inherit', env });
    if (r.status !== 0) return false;
  }
  return true;
}

/** One-line version strings for the results file. */
export function versions(paths: ToolPaths): Record<string, string> {
  const v = (cmd: string | null, args: string[], re: RegExp): string => {
    if (!cmd) return 'missing';
    try {
      const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
      const m = re.exec(`${r.stdout}${r.stderr}`);
      return m ? m[1]!.trim() : 'unknown';
    } catch {
      return 'unknown';
    }
  };
  let kernel = 'unknown';
  try {
    kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {
    /* keep unknown */
  }
  return {
    node: process.version,
    kernel,
    haproxy: v(paths.haproxy, ['-v'], /version (\S+)/),
    nginx: v(paths.nginx, ['-v'], /nginx\/(\S+)/),
    wrk: v(paths.wrk, ['-v'], /wrk (\S+)/),
    iperf3: v(paths.iperf3, ['--version'], /iperf (\S+)/),
    cc: v(paths.cc, ['--version'], /^(.*)$/m),
  };
}
