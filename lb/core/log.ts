// Logging: one JSON object a line on stdout, readable text when stdout is a TTY.
// Per-connection and per-session events go to debug only (SPEC).

import type { LogLevel } from './types.ts';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** True when debug lines are written: guard costly debug fields with it on hot paths. */
  readonly debugEnabled: boolean;
  child(fields: LogFields): Logger;
  setLevel(level: LogLevel): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Readable text instead of JSON; default: whether the stream is a TTY. */
  pretty?: boolean;
  write?: (line: string) => void;
  base?: LogFields;
}

function errorFields(v: unknown): unknown {
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code;
    return code === undefined ? v.message : `${v.message} (${String(code)})`;
  }
  return v;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const state = { level: LEVELS[opts.level ?? 'info'] };
  const pretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  const write = opts.write ?? ((line: string) => process.stdout.write(line + '\n'));
  return make(opts.base ?? {});

  function make(base: LogFields): Logger {
    function emit(level: LogLevel, msg: string, fields?: LogFields): void {
      if (LEVELS[level] < state.level) return;
      const all: LogFields = { ...base, ...fields };
      for (const k of Object.keys(all)) all[k] = errorFields(all[k]);
      if (pretty) {
        const time = new Date().toISOString().slice(11, 23);
        const extra = Object.entries(all)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        write(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? '  ' + extra : ''}`);
      } else {
        write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...all }));
      }
    }
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      get debugEnabled() {
        return state.level <= LEVELS.debug;
      },
      child: (f) => make({ ...base, ...f }),
      setLevel: (l) => {
        state.level = LEVELS[l];
      },
    };
  }
}

/** A logger that writes nothing: for tests and library use. */
export const silentLogger: Logger = createLogger({ level: 'error', write: () => {} });
