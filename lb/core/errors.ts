// Every error code Edgeport gives, in one place (STYLE.md: undici's habit).
// test/unit/errors.test.ts checks that each code is documented in README.md.

export const ErrorCodes = {
  EDGEPORT_ERR_CONFIG_INVALID: 'the configuration file has problems; each is listed',
  EDGEPORT_ERR_CONFIG_READ: 'the configuration file could not be read',
  EDGEPORT_ERR_BIND: 'a listener could not bind its VIP:port',
  EDGEPORT_ERR_ADMIN_BIND: 'the admin listener could not bind admin.listen',
  EDGEPORT_ERR_NO_BACKEND: 'no backend could take a connection (all tried or none eligible)',
  EDGEPORT_ERR_CONNECT_TIMEOUT: 'a backend did not accept a connection within timeouts.connect',
  EDGEPORT_ERR_WORKER_EXIT: 'a data plane worker exited unexpectedly',
  EDGEPORT_ERR_ADMIN_UNREACHABLE: 'edgeport status could not reach the admin endpoint',
  EDGEPORT_ERR_SYSCTL: 'arp_ignore/arp_announce on the announce interface are wrong and could not be set',
  EDGEPORT_ERR_ARP_SOCKET: 'the ARP socket on the announce interface could not be opened or failed',
  EDGEPORT_ERR_ALLOCATION: 'a service could not get an address from its pool',
  EDGEPORT_ERR_HA_NAMESPACE: 'ha.leaseNamespace does not exist in the cluster; Edgeport keeps trying',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** One problem in a configuration file. */
export interface ConfigProblem {
  /** Field path with bracket indices, e.g. "services[1].ports[0].port"; "" for the whole document. */
  path: string;
  message: string;
  /** 1-based line in the file. */
  line: number;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path || '(document)'}: ${p.message} (line ${p.line})`;
}

/** Thrown by the config parser: callers are expected to catch it and list `problems`. */
export class ConfigError extends Error {
  readonly code = 'EDGEPORT_ERR_CONFIG_INVALID' as const;
  readonly problems: readonly ConfigProblem[];
  readonly file: string | undefined;
  constructor(problems: readonly ConfigProblem[], file?: string) {
    super(
      `Cannot load configuration${file ? ` "${file}"` : ''}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n` +
        problems.map(formatProblem).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = problems;
    this.file = file;
  }
}

/** An error with a stable code, for conditions with no better built-in class. */
export class EdgeportError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgeportError';
    this.code = code;
  }
}
