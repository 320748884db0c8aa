// The edgeport command line (yargs): run, check, status, version.

import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { App } from '../app.ts';
import type { StatusDoc } from '../admin/status.ts';
import { ConfigError, EdgeportError, formatProblem } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import type { LogLevel } from '../core/types.ts';
import { loadConfigFile } from '../config/load.ts';
import { summarize } from '../config/summary.ts';
import { formatStatusTable } from './table.ts';

const DEFAULT_CONFIG = '/etc/edgeport/config.yaml';
const DEFAULT_ADMIN = 'http://127.0.0.1:9470';

/** Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage. */
const EXIT_CONFIG = 2;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function printConfigError(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`edgeport: invalid configuration${err.file ? ` ${err.file}` : ''} (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}):\n`);
    for (const p of err.problems) process.stderr.write(formatProblem(p) + '\n');
    return EXIT_CONFIG;
  }
  if (err instanceof EdgeportError) {
    process.stderr.write(`edgeport: ${err.message} [${err.code}]\n`);
    return err.code === 'EDGEPORT_ERR_CONFIG_READ' ? EXIT_CONFIG : 1;
  }
  process.stderr.write(`edgeport: ${String((err as Error)?.stack ?? err)}\n`);
  return 1;
}

async function run(argv: { config: string; logLevel: LogLevel; kubeconfig?: string | undefined }): Promise<void> {
  const pretty = Boolean(process.stdout.isTTY);
  const log = createLogger({ level: argv.logLevel, pretty });
  const app = new App({ configPath: argv.config, log, logLevel: argv.logLevel, pretty, ...(argv.kubeconfig ? { kubeconfig: argv.kubeconfig } : {}) });
  let stopping = false;
  const onStop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info('signal received', { signal: sig });
    void app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('stop failed', { err });
        process.exit(1);
      },
    );
  };
  // Signals are handled from the start, so a SIGTERM during start-up still stops cleanly.
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => {
    log.info('signal received', { signal: 'SIGHUP' });
    if (app.cfg) void app.reload();
  });
  try {
    await app.start();
  } catch (err) {
    process.exitCode = printConfigError(err);
    if (err instanceof ConfigError) log.error('invalid configuration', { config: argv.config, problems: err.problems.map(formatProblem) });
    process.exit();
  }
}

function check(argv: { config: string }): void {
  try {
    const cfg = loadConfigFile(argv.config);
    process.stdout.write(`${argv.config}: configuration is valid\n${summarize(cfg)}`);
  } catch (err) {
    process.exit(printConfigError(err));
  }
}

async function status(argv: { admin: string; json: boolean }): Promise<void> {
  const url = new URL('/status', argv.admin);
  let doc: StatusDoc;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as StatusDoc;
  } catch (err) {
    process.stderr.write(`edgeport: cannot reach the appliance at ${url.href}: ${String((err as Error).message)} [EDGEPORT_ERR_ADMIN_UNREACHABLE]\n`);
    process.exit(1);
  }
  process.stdout.write(argv.json ? JSON.stringify(doc, null, 2) + '\n' : formatStatusTable(doc));
}

await yargs(hideBin(process.argv))
  .scriptName('edgeport')
  .usage('$0 <command> [options]')
  .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as LogLevel, describe: 'log level' })
  .option('kubeconfig', { type: 'string', describe: 'kubeconfig file (overrides kubernetes.kubeconfig)' })
  .command(
    'run',
    'run the appliance in the foreground',
    (y) => y.option('config', { alias: 'c', type: 'string', default: DEFAULT_CONFIG, describe: 'configuration file' }),
    (argv) => run({ config: argv.config, logLevel: argv.logLevel, kubeconfig: argv.kubeconfig }),
  )
  .command(
    'check',
    'validate a configuration file without touching the network',
    (y) => y.option('config', { alias: 'c', type: 'string', default: DEFAULT_CONFIG, describe: 'configuration file' }),
    (argv) => check({ config: argv.config }),
  )
  .command(
    'status',
    'show a running appliance: services, VIPs, backends',
    (y) =>
      y
        .option('admin', { type: 'string', default: DEFAULT_ADMIN, describe: 'admin URL of the appliance' })
        .option('json', { type: 'boolean', default: false, describe: 'print the /status JSON' }),
    (argv) => status({ admin: argv.admin, json: argv.json }),
  )
  .command('version', 'print the version', {}, () => {
    process.stdout.write(version() + '\n');
  })
  .demandCommand(1, 'Name a command: run, check, status or version.')
  .strict()
  .fail((msg, err) => {
    if (err) throw err;
    process.stderr.write(`edgeport: ${msg}\nRun "edgeport --help" for usage.\n`);
    process.exit(EXIT_CONFIG);
  })
  .version(version())
  .help()
  .parse();
