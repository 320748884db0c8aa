// Reads the configuration file: the one place of I/O for configuration.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { EdgeportError } from '../core/errors.ts';
import type { Config } from '../core/types.ts';
import { parseConfig } from './parse.ts';

/**
 * Reads and parses `path`. Throws EdgeportError EDGEPORT_ERR_CONFIG_READ when the file cannot
 * be read, ConfigError (naming the file) when it has problems.
 */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException | null)?.code;
    const known: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a directory' };
    const detail = (code && known[code]) ?? (e instanceof Error ? e.message : String(e));
    throw new EdgeportError('EDGEPORT_ERR_CONFIG_READ', `Cannot read configuration "${path}": ${detail}`, { cause: e });
  }
  return parseConfig(text, { file: path, hostname: hostname() });
}
